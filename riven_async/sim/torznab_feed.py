"""Torznab searches over the catalog and their RSS/XML rendering (Jackett, Prowlarr, Zilean)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from riven_async.sim.catalog import Catalog
from riven_async.sim.infohash import Scope
from riven_async.sim.movies import Movie
from riven_async.sim.releases import Release
from riven_async.sim.responses import rfc822, xml_response
from riven_async.sim.shows import Show

MAX_LIMIT = 100
_EPISODE_TAG = re.compile(r"\bS(\d{1,2})(?:E(\d{1,3}))?\b", re.IGNORECASE)
_YEAR = re.compile(r"\b(19|20)\d{2}\b")
_PROWLARR_TOKEN = re.compile(r"\{(\w+):([^}]*)\}")
CATEGORY_NAMES = {
    2000: "Movies",
    2030: "Movies/SD",
    2040: "Movies/HD",
    2045: "Movies/UHD",
    5000: "TV",
    5030: "TV/SD",
    5040: "TV/HD",
    5045: "TV/UHD",
    5070: "TV/Anime",
}


@dataclass(frozen=True, slots=True)
class Indexer:
    """One configured tracker: its Jackett key, Prowlarr id, and the releases it carries."""

    key: str
    prowlarr_id: int
    name: str
    trackers: tuple[str, ...]
    site: str


INDEXERS = (
    Indexer("1337x", 3, "1337x", ("1337x",), "https://1337x.to/"),
    Indexer("thepiratebay", 5, "The Pirate Bay", ("ThePirateBay",), "https://thepiratebay.org/"),
    Indexer("torrentgalaxy", 7, "TorrentGalaxy", ("TorrentGalaxy",), "https://torrentgalaxy.to/"),
    Indexer("eztv", 9, "EZTV", ("EZTV",), "https://eztvx.to/"),
    Indexer("yts", 11, "YTS", ("YTS",), "https://yts.mx/"),
    Indexer(
        "kickasstorrents",
        13,
        "KickassTorrents",
        ("KickassTorrents", "MagnetDL", "RARBG"),
        "https://kickasstorrents.to/",
    ),
)


def indexer_for(release: Release) -> Indexer:
    return next((i for i in INDEXERS if release.tracker in i.trackers), INDEXERS[0])


def category(release: Release) -> int:
    movie = release.key.scope is Scope.MOVIE
    if release.resolution == "2160p":
        return 2045 if movie else 5045
    if release.resolution in ("1080p", "720p"):
        return 2040 if movie else 5040
    return 2030 if movie else 5030


@dataclass(frozen=True, slots=True)
class Query:
    """A Torznab (or Prowlarr JSON) search, normalised."""

    function: str
    text: str = ""
    season: int | None = None
    episode: int | None = None
    imdb: str | None = None
    tvdb: int | None = None
    tmdb: int | None = None
    categories: frozenset[int] = field(default_factory=frozenset)
    limit: int = MAX_LIMIT
    offset: int = 0

    @classmethod
    def from_params(cls, params: dict[str, str]) -> Query:
        """From ``t, q, season, ep, imdbid, tvdbid, tmdbid, cat, limit, offset``."""
        text = params.get("q", "")
        for name, value in _PROWLARR_TOKEN.findall(text):  # Prowlarr's {ImdbId:tt…} tokens
            params.setdefault(name.lower().replace("episode", "ep"), value)
        text = _PROWLARR_TOKEN.sub("", text).strip()
        imdb = params.get("imdbid") or None
        if imdb and not imdb.startswith("tt"):
            imdb = f"tt{int(imdb):07d}" if imdb.isdigit() else None
        function = {"tv-search": "tvsearch", "movie-search": "movie"}.get(
            params.get("t", "search"), params.get("t", "search")
        )
        return cls(
            function=function,
            text=text,
            season=_int(params.get("season")),
            episode=_int(params.get("ep")),
            imdb=imdb,
            tvdb=_int(params.get("tvdbid")),
            tmdb=_int(params.get("tmdbid")),
            categories=frozenset(
                c for c in (_int(p) for p in params.get("cat", "").split(",")) if c is not None
            ),
            limit=min(MAX_LIMIT, _int(params.get("limit")) or MAX_LIMIT),
            offset=_int(params.get("offset")) or 0,
        )


def _int(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() else None


def search(catalog: Catalog, query: Query, now: datetime) -> list[Release]:
    """The published releases a Torznab indexer would return for ``query``, newest first."""
    text, season, episode = query.text, query.season, query.episode
    tag = _EPISODE_TAG.search(text)
    if tag is not None:
        season = season if season is not None else int(tag.group(1))
        episode = episode if episode is not None or tag.group(2) is None else int(tag.group(2))
        text = _EPISODE_TAG.sub("", text)
    found: list[Release] = []
    show = _show(catalog, query, text) if query.function in ("tvsearch", "search") else None
    if show is not None:
        if season is not None and episode is not None:
            found = catalog.episode_releases(show, season, episode, now)
        elif season is not None:
            found = catalog.season_releases(show, season, now)
        else:
            found = catalog.show_releases(show, now)
            latest = [s for s in show.visible_seasons(now) if s.number > 0]
            if latest:
                found += catalog.season_releases(show, latest[-1].number, now)
    if query.function in ("movie", "search") and not found:
        movie = _movie(catalog, query, text)
        if movie is not None:
            found = catalog.movie_releases(movie, now)
    if query.categories:
        found = [r for r in found if _in_categories(r, query.categories)]
    unique = {r.infohash: r for r in found}
    ordered = sorted(unique.values(), key=lambda r: -r.published_s)
    return ordered[query.offset : query.offset + query.limit]


def _show(catalog: Catalog, query: Query, text: str) -> Show | None:
    if query.imdb:
        return catalog.show_by_imdb(query.imdb)
    if query.tvdb is not None:
        return catalog.show_by_tvdb(query.tvdb)
    if query.tmdb is not None and query.function == "tvsearch":
        return catalog.show_by_tmdb(query.tmdb)
    hits = catalog.search(text, movies=False) if text.strip() else []
    return catalog.show(hits[0]) if hits else None


def _movie(catalog: Catalog, query: Query, text: str) -> Movie | None:
    if query.imdb:
        return catalog.movie_by_imdb(query.imdb)
    if query.tmdb is not None:
        return catalog.movie_by_tmdb(query.tmdb)
    hits = catalog.search(_YEAR.sub("", text), movies=True) if text.strip() else []
    return catalog.movie(hits[0]) if hits else None


def _in_categories(release: Release, categories: frozenset[int]) -> bool:
    cat = category(release)
    return cat in categories or cat // 1000 * 1000 in categories


def download_token(release: Release) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(release.infohash)).decode().rstrip("=")


def token_hash(token: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        return None
    return raw.hex() if len(raw) == 20 else None


def error_xml(code: int, description: str, status: int = 200) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<error code={quoteattr(str(code))} description={quoteattr(description)} />\n"
    )
    return xml_response(body, status=status)


def caps_xml(server_title: str) -> web.Response:
    categories = "".join(
        f'    <category id="{top}" name="{CATEGORY_NAMES[top]}">\n'
        + "".join(
            f'      <subcat id="{sub}" name="{CATEGORY_NAMES[sub]}" />\n'
            for sub in sorted(CATEGORY_NAMES)
            if sub // 1000 * 1000 == top and sub != top
        )
        + "    </category>\n"
        for top in (2000, 5000)
    )
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<caps>
  <server title={quoteattr(server_title)} />
  <limits default="{MAX_LIMIT}" max="{MAX_LIMIT}" />
  <searching>
    <search available="yes" supportedParams="q" />
    <tv-search available="yes" supportedParams="q,season,ep,imdbid,tvdbid" />
    <movie-search available="yes" supportedParams="q,imdbid,tmdbid" />
    <music-search available="no" supportedParams="q" />
    <audio-search available="no" supportedParams="q" />
    <book-search available="no" supportedParams="q" />
  </searching>
  <categories>
{categories}  </categories>
</caps>
"""
    return xml_response(body)


@dataclass(frozen=True, slots=True)
class FeedStyle:
    """How one server marks its items and builds download links."""

    indexer_tag: str  # "jackettindexer" | "prowlarrindexer" | "" (Zilean: magnet links)
    origin: str
    api_key: str

    def link(self, release: Release) -> str:
        if not self.indexer_tag:
            return release.magnet
        indexer = indexer_for(release)
        token = download_token(release)
        if self.indexer_tag == "prowlarrindexer":
            return (
                f"{self.origin}/{indexer.prowlarr_id}/download?apikey={self.api_key}"
                f"&link={token}&file={_quote(release.title)}"
            )
        return (
            f"{self.origin}/dl/{indexer.key}/?jackett_apikey={self.api_key}&path={token}"
            f"&file={_quote(release.title)}"
        )


def _quote(text: str) -> str:
    return quote(text, safe="")


def imdb_of(catalog: Catalog, release: Release) -> str | None:
    """The IMDb id indexers attach to about two thirds of their results."""
    if int(release.infohash[0], 16) >= 11:
        return None
    index = release.key.title_index
    if release.key.scope is Scope.MOVIE:
        return catalog.movie(index).imdb_id if index < catalog.movie_count else None
    return catalog.show(index).imdb_id if index < catalog.show_count else None


def rss_xml(
    catalog: Catalog, releases: list[Release], style: FeedStyle, channel_title: str
) -> web.Response:
    items = "".join(_item(release, style, imdb_of(catalog, release)) for release in releases)
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:torznab="http://torznab.com/schemas/2015/feed">
  <channel>
    <atom:link href={quoteattr(style.origin + "/")} rel="self" type="application/rss+xml" />
    <title>{escape(channel_title)}</title>
    <description>{escape(channel_title)} Torznab feed</description>
    <link>{escape(style.origin)}/</link>
    <language>en-US</language>
    <category>search</category>
{items}  </channel>
</rss>
"""
    return xml_response(body)


def _item(release: Release, style: FeedStyle, imdb: str | None) -> str:
    indexer = indexer_for(release)
    cat = category(release)
    published = datetime.fromtimestamp(release.published_s, UTC)
    magnet_link = release.indexed_hash and indexer.key == "thepiratebay"
    link = release.magnet if magnet_link else style.link(release)
    comments = f"{indexer.site}torrent/{int(release.infohash[:7], 16)}/"
    lines = [
        f"<title>{escape(release.title)}</title>",
        f"<guid>{escape(release.magnet if magnet_link else comments)}</guid>",
    ]
    if style.indexer_tag:
        lines.append(
            f"<{style.indexer_tag} id={quoteattr(indexer.key)}>{escape(indexer.name)}"
            f"</{style.indexer_tag}>"
        )
    lines += [
        "<type>public</type>",
        f"<comments>{escape(comments)}</comments>",
        f"<pubDate>{rfc822(published)}</pubDate>",
        f"<size>{release.size}</size>",
    ]
    if release.multi_file:
        lines.append(f"<files>{len(release.files)}</files>")
    lines += [
        f"<grabs>{release.seeders * 7 + 3}</grabs>",
        "<description />",
        f"<link>{escape(link)}</link>",
        f"<category>{cat}</category>",
        f'<enclosure url={quoteattr(link)} length="{release.size}" '
        'type="application/x-bittorrent" />',
    ]
    attrs = [("category", str(cat))]
    if imdb is not None:
        attrs += [("imdb", imdb.removeprefix("tt")[-7:]), ("imdbid", imdb)]
    attrs += [("seeders", str(release.seeders)), ("peers", str(release.peers))]
    if release.indexed_hash:
        attrs += [("infohash", release.infohash), ("magneturl", release.magnet)]
    attrs += [("downloadvolumefactor", "0"), ("uploadvolumefactor", "1")]
    lines += [f"<torznab:attr name={quoteattr(k)} value={quoteattr(v)} />" for k, v in attrs]
    inner = "".join(f"      {line}\n" for line in lines)
    return f"    <item>\n{inner}    </item>\n"
