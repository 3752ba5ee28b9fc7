"""Torznab scraper for Jackett and Prowlarr: caps once per indexer, then id-based searches."""

from __future__ import annotations

import asyncio
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from yarl import URL

from riven_async.core.http import HttpClient, Response
from riven_async.errors import RateLimited, UpstreamError, UpstreamPayloadError
from riven_async.services.scrapers import (
    ParseError,
    ScrapedRelease,
    ScrapeQuery,
    ScrapeResult,
    bencode,
    client_blocked_for,
    client_saturated,
    infohash_from_magnet,
    merge_releases,
    normalize_infohash,
)

log = logging.getLogger(__name__)

JACKETT_FEED = "/api/v2.0/indexers/{indexer}/results/torznab/api"
PROWLARR_FEED = "/{indexer}/api"
CAPS_NAMESPACE = "torznab_caps"
MOVIE_CATEGORIES = (2000,)
TV_CATEGORIES = (5000,)
MAX_FEED_BYTES = 16 * 1024 * 1024
MAX_ITEMS = 1000
MAX_LINK_FETCHES = 25
LINK_CONCURRENCY = 4
LINK_TIMEOUT_S = 10.0
TORRENT_PARSE_TIMEOUT_S = 5.0
SEARCH_LIMIT = 100

_ATTR_TAGS = frozenset(
    {
        "{http://torznab.com/schemas/2015/feed}attr",
        "{http://www.newznab.com/DTD/2010/feeds/attributes/}attr",
        "attr",
    }
)
_INDEXER_TAGS = ("jackettindexer", "prowlarrindexer", "indexer")
# Feeds never declare a DTD; refusing one keeps entity tricks out of the parser.
_DTD_RE = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_MAGNET_IN_TEXT_RE = re.compile(r"magnet:\?[^\s'\"<>]+", re.IGNORECASE)
_INT_RE = re.compile(r"\s*(\d{1,19})\s*")


@dataclass(frozen=True, slots=True)
class SearchMode:
    """One ``<searching>`` entry: whether it is available and the parameters it takes."""

    available: bool
    params: frozenset[str] = frozenset({"q"})


@dataclass(frozen=True, slots=True)
class Caps:
    """What one indexer can search for (``t=caps``)."""

    search: SearchMode = SearchMode(True)
    tv: SearchMode = SearchMode(False, frozenset())
    movie: SearchMode = SearchMode(False, frozenset())
    categories: frozenset[int] = frozenset()
    limit_max: int | None = None
    server: str = ""


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One ``<item>`` of a Torznab answer, reduced to what a release needs."""

    title: str
    infohash: str | None = None
    link: str | None = None
    size_bytes: int | None = None
    seeders: int | None = None
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class TorznabErrorReply:
    """``<error code description/>`` in place of a feed."""

    code: int | None
    description: str


@dataclass(frozen=True, slots=True)
class _Feed:
    label: str
    path: str


def parse_xml(body: bytes) -> ET.Element:
    """The document's root; ``ParseError`` for oversized, DTD-bearing or broken XML."""
    if len(body) > MAX_FEED_BYTES:
        raise ParseError(f"{len(body)} bytes of XML is over the {MAX_FEED_BYTES}-byte limit")
    if _DTD_RE.search(body):
        raise ParseError("XML with a DTD or entity declaration")
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise ParseError(f"malformed XML: {exc}") from None


def error_reply(root: ET.Element) -> TorznabErrorReply | None:
    if root.tag != "error":
        return None
    code = _to_int(root.get("code"))
    return TorznabErrorReply(code, (root.get("description") or "").strip()[:200])


def parse_caps(body: bytes) -> Caps:
    """Read ``t=caps``; ``ParseError`` if it is not a caps document."""
    return caps_from(parse_xml(body))


def caps_from(root: ET.Element) -> Caps:
    if root.tag != "caps":
        raise ParseError(f"expected <caps>, got <{root.tag[:40]}>")
    searching = root.find("searching")

    def mode(tag: str, default: SearchMode) -> SearchMode:
        element = searching.find(tag) if searching is not None else None
        if element is None:
            return default
        params = element.get("supportedParams") or "q"
        return SearchMode(
            (element.get("available") or "").strip().lower() == "yes",
            frozenset(p.strip().lower() for p in params.split(",") if p.strip()),
        )

    categories: set[int] = set()
    for element in root.iter():
        if element.tag in ("category", "subcat"):
            number = _to_int(element.get("id"))
            if number is not None:
                categories.add(number)
    limits = root.find("limits")
    server = root.find("server")
    return Caps(
        search=mode("search", SearchMode(True)),
        tv=mode("tv-search", SearchMode(False, frozenset())),
        movie=mode("movie-search", SearchMode(False, frozenset())),
        categories=frozenset(categories),
        limit_max=_to_int(limits.get("max")) if limits is not None else None,
        server=(server.get("title") or "") if server is not None else "",
    )


def parse_feed(body: bytes, *, max_items: int = MAX_ITEMS) -> list[FeedItem] | TorznabErrorReply:
    """The items of a search answer, or the ``<error>`` it carries; ``ParseError`` else."""
    return feed_from(parse_xml(body), max_items=max_items)


def feed_from(
    root: ET.Element, *, max_items: int = MAX_ITEMS
) -> list[FeedItem] | TorznabErrorReply:
    reply = error_reply(root)
    if reply is not None:
        return reply
    channel = root.find("channel") if root.tag == "rss" else None
    if channel is None:
        raise ParseError(f"expected <rss><channel>, got <{root.tag[:40]}>")
    fallback_provider = (channel.findtext("title") or "").strip() or None
    items = []
    for element in channel.iterfind("item"):
        item = _item(element, fallback_provider)
        if item is not None:
            items.append(item)
            if len(items) >= max_items:
                break
    return items


def _item(element: ET.Element, fallback_provider: str | None) -> FeedItem | None:
    title = " ".join((element.findtext("title") or "").split())
    if not title:
        return None
    attrs: dict[str, str] = {}
    for child in element:
        if child.tag in _ATTR_TAGS:
            name, value = (child.get("name") or "").lower(), child.get("value")
            if name and value is not None:
                attrs.setdefault(name, value.strip())
    enclosure = element.find("enclosure")
    enclosure_url = enclosure.get("url") if enclosure is not None else None
    link_text, guid = element.findtext("link"), element.findtext("guid")
    infohash = _hash_attr(attrs.get("infohash"))
    for candidate in (attrs.get("magneturl"), link_text, enclosure_url, guid):
        if infohash is None and candidate and _has_scheme(candidate, "magnet:"):
            infohash = infohash_from_magnet(candidate.strip())
    link = next(
        (
            c.strip()
            for c in (link_text, enclosure_url)
            if c and (_has_scheme(c, "http://") or _has_scheme(c, "https://"))
        ),
        None,
    )
    size = _to_int(attrs.get("size")) or _to_int(element.findtext("size"))
    if size is None and enclosure is not None:
        size = _to_int(enclosure.get("length"))
    provider = next(
        (text.strip() for tag in _INDEXER_TAGS if (text := element.findtext(tag))), None
    )
    return FeedItem(
        title=title[:1000],
        infohash=infohash,
        link=link,
        size_bytes=size or None,
        seeders=_to_int(attrs.get("seeders")),
        provider=(provider or attrs.get("indexer") or fallback_provider or None),
    )


def _has_scheme(text: str, scheme: str) -> bool:
    return text.lstrip()[: len(scheme)].lower() == scheme


def _hash_attr(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return normalize_infohash(value)
    except ParseError:
        return None


def _to_int(text: str | None) -> int | None:
    if text is None:
        return None
    match = _INT_RE.fullmatch(text)
    return int(match[1]) if match else None


def search_params(
    caps: Caps,
    query: ScrapeQuery,
    *,
    movie_categories: Sequence[int] = MOVIE_CATEGORIES,
    tv_categories: Sequence[int] = TV_CATEGORIES,
    limit: int = SEARCH_LIMIT,
) -> dict[str, str] | None:
    """The ``t=…`` query for ``query`` using only what caps advertises; None if impossible.

    Ids (``imdbid``, ``tvdbid``, ``tmdbid``) with ``season``/``ep`` when the indexer's
    ``movie``/``tv-search`` takes them; else a title query; else a plain ``t=search``.
    """
    movie = query.kind == "movie"
    mode = caps.movie if movie else caps.tv
    params = _typed_search(mode, query) if mode.available else None
    if params is None:
        params = _plain_search(caps, query)
    if params is None:
        return None
    wanted = movie_categories if movie else tv_categories
    categories = [c for c in wanted if not caps.categories or c in caps.categories]
    if categories:
        params["cat"] = ",".join(str(c) for c in categories)
    params["limit"] = str(min(limit, caps.limit_max) if caps.limit_max else limit)
    return params


def _typed_search(mode: SearchMode, query: ScrapeQuery) -> dict[str, str] | None:
    movie = query.kind == "movie"
    ids = _id_params(mode.params, query)
    params = {"t": "movie" if movie else "tvsearch", **ids}
    if not movie:
        if "season" in mode.params:
            params["season"] = str(query.season)
        if query.kind == "episode" and "ep" in mode.params:
            params["ep"] = str(query.episode)
    if not ids:
        text = _text(query, with_episode="season" not in mode.params)
        if not text or "q" not in mode.params:
            return None
        params["q"] = text
    return params


def _plain_search(caps: Caps, query: ScrapeQuery) -> dict[str, str] | None:
    text = _text(query, with_episode=True)
    if not caps.search.available or "q" not in caps.search.params or not text:
        return None
    return {"t": "search", "q": text}


def _id_params(supported: frozenset[str], query: ScrapeQuery) -> dict[str, str]:
    out: dict[str, str] = {}
    if query.imdb_id and "imdbid" in supported:
        out["imdbid"] = query.imdb_id.removeprefix("tt")
    if query.tvdb_id and query.kind != "movie" and "tvdbid" in supported:
        out["tvdbid"] = str(query.tvdb_id)
    if query.tmdb_id and "tmdbid" in supported:
        out["tmdbid"] = str(query.tmdb_id)
    return out


def _text(query: ScrapeQuery, *, with_episode: bool) -> str:
    title = " ".join(query.title.split())
    if not title:
        return ""
    if query.kind == "movie":
        return f"{title} {query.year}" if query.year else title
    if not with_episode:
        return title
    if query.kind == "episode":
        return f"{title} S{query.season:02d}E{query.episode:02d}"
    return f"{title} S{query.season:02d}"


class TorznabScraper:
    """Jackett or Prowlarr over Torznab, one or more indexers on one server.

    With no ``indexers`` the client's base URL is the one feed (``{base}/api``: Jackett's
    ``…/indexers/all/results/torznab``, or Prowlarr's ``…/{id}``). With ``indexers``, each
    is searched at ``feed_path`` (``JACKETT_FEED`` or ``PROWLARR_FEED``) on the base URL's
    origin. Caps are fetched once per indexer (``start``, else on first use) through the
    ``torznab_caps`` cache namespace. Items without an infohash or magnet have their link
    fetched, but only from the server's own origin (or ``link_origins``), since the client
    adds the API key to every request.
    """

    def __init__(
        self,
        client: HttpClient,
        *,
        name: str | None = None,
        indexers: Sequence[str] = (),
        feed_path: str = JACKETT_FEED,
        movie_categories: Sequence[int] = MOVIE_CATEGORIES,
        tv_categories: Sequence[int] = TV_CATEGORIES,
        limit: int = SEARCH_LIMIT,
        max_link_fetches: int = MAX_LINK_FETCHES,
        link_concurrency: int = LINK_CONCURRENCY,
        link_timeout_s: float = LINK_TIMEOUT_S,
        link_origins: Collection[str] = (),
        torrent_max_bytes: int = bencode.MAX_TORRENT_BYTES,
        torrent_parse_timeout_s: float = TORRENT_PARSE_TIMEOUT_S,
    ) -> None:
        if "{indexer}" not in feed_path:
            raise ValueError("feed_path must contain '{indexer}'")
        if link_concurrency < 1 or max_link_fetches < 0 or limit < 1:
            raise ValueError("link_concurrency and limit must be >= 1, max_link_fetches >= 0")
        self._client = client
        self.name = name or client.name
        base = URL(client.policy.base_url.rstrip("/"))
        origin = base.origin()
        if indexers:
            self._feeds = tuple(
                _Feed(i, str(origin.with_path(feed_path.format(indexer=i))))
                for i in dict.fromkeys(indexers)
            )
        else:
            self._feeds = (_Feed(base.path.rstrip("/") or "/", "api"),)
        self._movie_categories = tuple(movie_categories)
        self._tv_categories = tuple(tv_categories)
        self._limit = limit
        self._max_link_fetches = max_link_fetches
        self._link_concurrency = link_concurrency
        self._link_timeout_s = link_timeout_s
        extra = (str(URL(o).origin()) for o in link_origins)
        self._link_origins = frozenset({str(origin), *extra})
        self._torrent_max_bytes = torrent_max_bytes
        self._torrent_parse_timeout_s = torrent_parse_timeout_s
        self._caps: dict[str, Caps] = {}
        # Feeds whose last caps answer could not be used: the client may hold that answer
        # in its cache (a 200 with a broken body), so their next fetch goes past it.
        self._caps_failed: set[str] = set()

    def __repr__(self) -> str:
        return f"<TorznabScraper {self.name} feeds={len(self._feeds)}>"

    @property
    def indexers(self) -> tuple[str, ...]:
        return tuple(feed.label for feed in self._feeds)

    def caps(self) -> Mapping[str, Caps]:
        """The caps known so far, by indexer."""
        return dict(self._caps)

    def supports(self, query: ScrapeQuery) -> bool:
        return bool(query.imdb_id or query.tvdb_id or query.tmdb_id or query.title.strip())

    def blocked_for(self) -> float:
        return client_blocked_for(self._client)

    def saturated(self) -> bool:
        return client_saturated(self._client)

    async def start(self) -> None:
        """Fetch every indexer's caps now; a failure is logged and retried on first use."""
        await self._fetch_all_caps(refresh=False)

    async def refresh_caps(self) -> None:
        """Forget the caps and fetch them afresh, past the cache (an indexer changed)."""
        self._caps.clear()
        await self._fetch_all_caps(refresh=True)

    async def _fetch_all_caps(self, *, refresh: bool) -> None:
        async with asyncio.TaskGroup() as group:
            for feed in self._feeds:
                group.create_task(self._caps_logged(feed, refresh))

    async def scrape(self, query: ScrapeQuery) -> ScrapeResult:
        outcomes: list[list[ScrapedRelease] | UpstreamError | ParseError] = [
            [] for _ in self._feeds
        ]

        async def one(index: int, feed: _Feed) -> None:
            try:
                outcomes[index] = await self._search(feed, query)
            except (UpstreamError, ParseError) as exc:
                outcomes[index] = exc

        async with asyncio.TaskGroup() as group:
            for index, feed in enumerate(self._feeds):
                group.create_task(one(index, feed))
        found = [r for o in outcomes if isinstance(o, list) for r in o]
        errors = [o for o in outcomes if not isinstance(o, list)]
        if errors and len(errors) == len(outcomes):
            # A rate limit matters most to the caller: it defers instead of failing.
            raise next((e for e in errors if isinstance(e, RateLimited)), errors[0])
        soft = None
        if errors:
            soft = f"{self.name}: {len(errors)} of {len(outcomes)} indexers failed: {errors[0]}"
        return ScrapeResult(merge_releases(found), soft_failure=soft)

    async def _caps_logged(self, feed: _Feed, refresh: bool) -> None:
        try:
            await self._caps_for(feed, refresh=refresh)
        except (UpstreamError, ParseError) as exc:
            log.warning(
                "%s: caps of %s unavailable, will retry on first search: %s",
                self.name,
                feed.label,
                exc,
                extra={"action": "torznab_caps", "scraper": self.name, "indexer": feed.label},
            )

    async def _caps_for(self, feed: _Feed, *, refresh: bool = False) -> Caps:
        known = self._caps.get(feed.label)
        if known is not None and not refresh:
            return known
        # Concurrent first searches share one request: the client coalesces equal GETs.
        response = await self._client.get(
            feed.path,
            params={"t": "caps"},
            cache_namespace=CAPS_NAMESPACE,
            bypass_cache=refresh or feed.label in self._caps_failed,
        )
        self._caps_failed.add(feed.label)
        root = self._root(response)
        reply = error_reply(root)
        if reply is not None:
            raise self._error(response, reply)
        try:
            caps = caps_from(root)
        except ParseError as exc:
            # An indexer whose caps cannot be read still answers plain searches.
            log.warning(
                "%s: unreadable caps from %s (%s); using plain q searches",
                self.name,
                feed.label,
                exc,
                extra={"action": "torznab_caps", "scraper": self.name, "indexer": feed.label},
            )
            caps = Caps()
        self._caps[feed.label] = caps
        self._caps_failed.discard(feed.label)
        return caps

    async def _search(self, feed: _Feed, query: ScrapeQuery) -> list[ScrapedRelease]:
        caps = await self._caps_for(feed)
        params = search_params(
            caps,
            query,
            movie_categories=self._movie_categories,
            tv_categories=self._tv_categories,
            limit=self._limit,
        )
        if params is None:
            return []
        response = await self._client.get(feed.path, params=params)
        try:
            items = feed_from(self._root(response))
        except ParseError as exc:
            raise self._payload(response, str(exc)) from None
        if isinstance(items, TorznabErrorReply):
            raise self._error(response, items)
        hashes = await self._resolve_links(feed, [i for i in items if i.infohash is None])
        releases = []
        for item in items:
            infohash = item.infohash or (hashes.get(item.link) if item.link else None)
            if infohash is None:
                continue
            releases.append(
                ScrapedRelease(
                    infohash=infohash,
                    raw_title=item.title,
                    source=self.name,
                    size_bytes=item.size_bytes,
                    seeders=item.seeders,
                    provider=item.provider,
                )
            )
        return releases

    def _root(self, response: Response) -> ET.Element:
        try:
            return parse_xml(response.body)
        except ParseError as exc:
            raise self._payload(response, str(exc)) from None

    def _payload(self, response: Response, reason: str) -> UpstreamPayloadError:
        return UpstreamPayloadError(
            self.name, response.status, response.url, self._client.scrub(reason)
        )

    def _error(self, response: Response, reply: TorznabErrorReply) -> UpstreamError:
        reason = self._client.scrub(f"torznab error {reply.code}: {reply.description}")
        return UpstreamError(self.name, response.status, response.url, reason)

    async def _resolve_links(self, feed: _Feed, items: list[FeedItem]) -> dict[str, str]:
        """Infohashes for items that came without one, from their links (bounded)."""
        links = list(dict.fromkeys(i.link for i in items if i.link and self._may_fetch(i.link)))
        if not items:
            return {}
        if len(links) < len(items) or len(links) > self._max_link_fetches:
            log.debug(
                "%s: %d items of %s without infohash; fetching %d links",
                self.name,
                len(items),
                feed.label,
                min(len(links), self._max_link_fetches),
                extra={"action": "torznab_links", "scraper": self.name, "indexer": feed.label},
            )
        found: dict[str, str] = {}
        gate = asyncio.Semaphore(self._link_concurrency)

        async def one(link: str) -> None:
            async with gate:
                if self.blocked_for() > 0:
                    return  # paused by a 429: the rest of the links wait for the next scrape
                infohash = await self._hash_from_link(link)
            if infohash is not None:
                found[link] = infohash

        async with asyncio.TaskGroup() as group:
            for link in links[: self._max_link_fetches]:
                group.create_task(one(link))
        return found

    def _may_fetch(self, link: str) -> bool:
        try:
            return str(URL(link).origin()) in self._link_origins
        except ValueError:
            return False

    async def _hash_from_link(self, link: str) -> str | None:
        try:
            response = await self._client.get(link, max_retries=1, timeout_s=self._link_timeout_s)
        except UpstreamError as exc:
            magnet = redirected_magnet(exc)
            if magnet is None:
                log.debug(
                    "%s: link fetch failed: %s",
                    self.name,
                    exc,
                    extra={"action": "torznab_link", "scraper": self.name},
                )
                return None
            return infohash_from_magnet(magnet)
        return await self._hash_from_body(response.body)

    async def _hash_from_body(self, body: bytes) -> str | None:
        head = body[:16].lstrip()
        if head[:7].lower() == b"magnet:":
            try:
                return infohash_from_magnet(body.decode("utf-8", "replace").strip())
            except ParseError:
                return None
        if head[:1] != b"d" or len(body) > self._torrent_max_bytes:
            return None
        try:
            async with asyncio.timeout(self._torrent_parse_timeout_s):
                return await asyncio.to_thread(
                    bencode.info_hash, body, max_bytes=self._torrent_max_bytes
                )
        except (ParseError, TimeoutError) as exc:
            log.debug(
                "%s: unusable .torrent (%s)",
                self.name,
                exc,
                extra={"action": "torznab_torrent", "scraper": self.name},
            )
            return None


def redirected_magnet(exc: UpstreamError) -> str | None:
    """The magnet a download link redirected to, from the client's error.

    ``HttpClient`` follows redirects and aiohttp refuses a non-HTTP ``Location``; the
    client reports it as a no-answer error whose reason carries that location.
    """
    if exc.status is not None or "NonHttpUrlRedirect" not in exc.reason:
        return None
    match = _MAGNET_IN_TEXT_RE.search(exc.reason)
    return match[0] if match else None
