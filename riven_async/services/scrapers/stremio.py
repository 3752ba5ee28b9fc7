"""Stremio addon scrapers: Torrentio, Comet, MediaFusion and their forks (one protocol)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError
from yarl import URL

from riven_async.core.http import HttpClient
from riven_async.errors import RateLimited, UpstreamError, UpstreamPayloadError
from riven_async.services.scrapers import (
    ParseError,
    ScrapedRelease,
    ScrapeQuery,
    ScrapeResult,
    client_blocked_for,
    client_saturated,
    infohash_from_magnet,
    merge_releases,
    normalize_infohash,
)

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 8192
MAX_STREAMS = 2000
MAX_NOTICE_CHARS = 200
RATE_LIMIT_NOTICE_PAUSE_S = 60.0

_SIZE_UNITS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "b": 1,
        "kb": 1024,
        "kib": 1024,
        "mb": 1024**2,
        "mib": 1024**2,
        "gb": 1024**3,
        "gib": 1024**3,
        "tb": 1024**4,
        "tib": 1024**4,
    }
)
# Path segment after which the infohash sits, and how far after it.
_HASH_AFTER: Final[Mapping[str, int]] = MappingProxyType({"resolve": 3, "playback": 1})
_SEEDERS_RE = re.compile(r"👤\s*(\d{1,9})(?!\d)")
_SIZE_RE = re.compile(r"💾\s*(\d{1,12}(?:[.,]\d{1,6})?)\s*([KMGT]i?B|kB|B)(?![A-Za-z])", re.I)
# Torrentio ⚙️, Comet 🔎, MediaFusion 🔗: the rest of the line names the provider.
_PROVIDER_RE = re.compile(r"(?:⚙\ufe0f?|🔎|🔗)[ \t]*([^\n]*)")
_MARKERS = ("👤", "💾", "⚙", "🔎", "🔗", "📹", "⭐", "🏷", "🔊", "🌐", "📄", "📂")
_FLAG_RE = re.compile(r"[\U0001F1E6-\U0001F1FF]")
_CACHED_NAME_RE = re.compile(r"\[[^\]\s]{1,12}\+\]|⚡")
# The debrid short name before the marker: "[RD+]", "[RD⚡]", "RD ⚡️".
_CACHED_SERVICE_RE = re.compile(r"\[?([A-Za-z]{2,6})(?:\+\]|\s*⚡)")
# Stremio addons' debrid short names (Torrentio's list) -> our service names.
_DEBRID_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "rd": "realdebrid",
        "ad": "alldebrid",
        "tb": "torbox",
        "pm": "premiumize",
        "dl": "debridlink",
        "ed": "easydebrid",
        "oc": "offcloud",
        "putio": "putio",
    }
)
_EXTENSION_RE = re.compile(r"\.[A-Za-z0-9]{2,4}$")
_NOT_ALNUM_RE = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class StreamText:
    """What a stream's ``title``/``description`` says about its torrent."""

    torrent_name: str
    file_name: str | None = None
    seeders: int | None = None
    size_bytes: int | None = None
    provider: str | None = None


def parse_stream_text(text: str) -> StreamText:
    """Read Torrentio's title lines or Comet's / MediaFusion's description.

    Torrentio: torrent name, the file name when it differs (packs), then
    ``👤 seeders 💾 size ⚙️ provider``. Comet: ``📄 name`` and ``👤 … 💾 … 🔎 tracker``.
    MediaFusion: ``📂 name ┈➤ file``, ``💾 size 👤 seeders`` and ``🔗 provider``.
    Raises ``ParseError`` (and nothing else) when no torrent name can be found.
    """
    if len(text) > MAX_TEXT_CHARS:
        raise ParseError(f"stream text of {len(text)} characters is too long")
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line]
    name: str | None = None
    file_name: str | None = None
    for line in lines:
        if line.startswith("📄"):
            name = _clean(line[1:])
            break
        if line.startswith("📂"):
            head, _, tail = line[1:].partition("┈➤")
            name, file_name = _clean(head), _clean(tail) or None
            break
    if name is None and lines and not _is_meta(lines[0]):
        name = lines[0]
        if len(lines) > 1 and not _is_meta(lines[1]):
            file_name = lines[1]
    if not name:
        raise ParseError("stream text names no torrent")
    provider_match = _PROVIDER_RE.search(text)
    provider = _clean(provider_match[1])[:100] if provider_match else ""
    return StreamText(
        torrent_name=name,
        file_name=file_name,
        seeders=_seeders(text),
        size_bytes=_size(text),
        provider=provider or None,
    )


def _clean(text: str) -> str:
    return text.replace("\ufe0f", "").strip()


def _is_meta(line: str) -> bool:
    return (
        line.startswith(_MARKERS)
        or any(m in line for m in _MARKERS[:3])
        or bool(_FLAG_RE.search(line))
    )


def _seeders(text: str) -> int | None:
    match = _SEEDERS_RE.search(text)
    return int(match[1]) if match else None


def _size(text: str) -> int | None:
    match = _SIZE_RE.search(text)
    if match is None:
        return None
    value = float(match[1].replace(",", "."))
    size = value * _SIZE_UNITS[match[2].lower()]
    return int(size) if math.isfinite(size) and size < 2**62 else None


def is_cached_name(name: str) -> bool:
    """``[RD+]`` (Torrentio), ``[RD⚡]`` (Comet), ``RD ⚡️`` (MediaFusion): cached on a debrid."""
    return bool(_CACHED_NAME_RE.search(name))


def cached_services(name: str) -> tuple[str, ...]:
    """The debrid services a cached marker names (``[RD+]`` -> ``("realdebrid",)``)."""
    found: list[str] = []
    for match in _CACHED_SERVICE_RE.finditer(name):
        short = match[1].lower()
        service = _DEBRID_NAMES.get(short, short)
        if service not in found:
            found.append(service)
    return tuple(found)


def infohash_from_url(url: str) -> str | None:
    """The infohash in a debrid-variant stream URL, or None.

    Torrentio: ``…/resolve/{moch}/{key}/{hash}/…``; Comet: ``…/playback/{hash}/…``; also
    magnets and ``info_hash``/``btih`` query parameters.
    """
    if url[:7].lower() == "magnet:":
        try:
            return infohash_from_magnet(url)
        except ParseError:
            return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    segments = parts.path.split("/")
    for index, segment in enumerate(segments):
        offset = _HASH_AFTER.get(segment)
        if offset is not None and index + offset < len(segments):
            found = _hash_or_none(segments[index + offset])
            if found is not None:
                return found
    for key, value in parse_qsl(parts.query):
        if key.lower() in ("info_hash", "infohash", "btih", "hash"):
            found = _hash_or_none(value)
            if found is not None:
                return found
    return None


def _hash_or_none(text: str) -> str | None:
    if len(text) != 40:
        return None
    try:
        return normalize_infohash(text)
    except ParseError:
        return None


def stremio_id(query: ScrapeQuery) -> tuple[str, str]:
    """``(type, id)``: ``movie``/``tt…``; ``series``/``tt…:S:E``; a season as ``tt…:S:1``."""
    if query.imdb_id is None:
        raise ValueError("stremio addons need an IMDb id")
    if query.kind == "movie":
        return "movie", query.imdb_id
    episode = query.episode if query.kind == "episode" else 1
    return "series", f"{query.imdb_id}:{query.season}:{episode}"


class _Hints(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    filename: str | None = None
    videoSize: int | None = None
    bingeGroup: str | None = None


class _Stream(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = ""
    title: str | None = None
    description: str | None = None
    infoHash: str | None = None
    fileIdx: int | None = None
    url: str | None = None
    behaviorHints: _Hints | None = None


class StremioScraper:
    """One Stremio addon; its base URL (the client's) carries the addon's config segment.

    Notice-only answers (Comet's "scraping in progress" or obsolete config, MediaFusion's
    "rate-limit exceeded") come back as soft failures; the rate-limit notice also pauses
    the client's limiter for ``rate_limit_pause_s``, as a 429 would.
    """

    def __init__(
        self,
        client: HttpClient,
        *,
        name: str | None = None,
        rate_limit_pause_s: float = RATE_LIMIT_NOTICE_PAUSE_S,
    ) -> None:
        self._client = client
        self.name = name or client.name
        self._rate_limit_pause_s = rate_limit_pause_s
        self._config_forms = _config_forms(client.policy.base_url)

    def __repr__(self) -> str:
        return f"<StremioScraper {self.name}>"

    def supports(self, query: ScrapeQuery) -> bool:
        return query.imdb_id is not None

    def blocked_for(self) -> float:
        return client_blocked_for(self._client)

    def saturated(self) -> bool:
        return client_saturated(self._client)

    async def scrape(self, query: ScrapeQuery) -> ScrapeResult:
        try:
            return await self._scrape(query)
        except UpstreamError as exc:
            if not self._config_forms:
                raise
            # The config segment may hold a debrid key (Comet's as base64, which no
            # scrubber recognises): no error may carry it.
            raise masked_error(exc, self._config_forms) from None

    async def _scrape(self, query: ScrapeQuery) -> ScrapeResult:
        kind, ident = stremio_id(query)
        response = await self._client.get(f"stream/{kind}/{ident}.json")
        body = response.json()
        streams = body.get("streams") if isinstance(body, dict) else None
        if not isinstance(streams, list):
            raise UpstreamPayloadError(
                self.name, response.status, response.url, "no streams list in the answer"
            )
        releases: list[ScrapedRelease] = []
        notices: list[str] = []
        skipped = 0
        for raw in streams[:MAX_STREAMS]:
            try:
                stream = _Stream.model_validate(raw)
            except ValidationError:
                skipped += 1
                continue
            release = self._release(stream)
            if release is not None:
                releases.append(release)
            elif _is_notice(stream):
                notices.append(_notice_text(stream))
            else:
                skipped += 1
        if skipped:
            log.debug(
                "%s: skipped %d unreadable streams for %s",
                self.name,
                skipped,
                query.describe(),
                extra={"action": "scrape_skip", "scraper": self.name, "skipped": skipped},
            )
        if not releases and notices:
            return self._soft_failure(query, notices)
        return ScrapeResult(merge_releases(releases))

    def _release(self, stream: _Stream) -> ScrapedRelease | None:
        infohash = _hash_or_none(stream.infoHash) if stream.infoHash else None
        if infohash is None and stream.url:
            infohash = infohash_from_url(stream.url)
        if infohash is None:
            return None
        hints = stream.behaviorHints or _Hints()
        text = stream.description or stream.title or ""
        try:
            info = parse_stream_text(text)
        except ParseError:
            if not hints.filename:
                return None
            info = StreamText(torrent_name=hints.filename)
        file_name = hints.filename or info.file_name
        if file_name == info.torrent_name:
            file_name = None
        size = hints.videoSize if hints.videoSize is not None and hints.videoSize > 0 else None
        size = size if size is not None else info.size_bytes
        # A pack's stream reports the size of the file that plays, not of the torrent.
        in_pack = file_name is not None and _stem(file_name) != _stem(info.torrent_name)
        return ScrapedRelease(
            infohash=infohash,
            raw_title=info.torrent_name,
            source=self.name,
            file_name=file_name,
            file_idx=stream.fileIdx if stream.fileIdx is not None and stream.fileIdx >= 0 else None,
            size_bytes=None if in_pack else size,
            file_size_bytes=size,
            seeders=info.seeders,
            provider=info.provider,
            cached_hint=is_cached_name(stream.name),
            cached_on=cached_services(stream.name),
        )

    def _soft_failure(self, query: ScrapeQuery, notices: list[str]) -> ScrapeResult:
        reason = "; ".join(dict.fromkeys(notices))[:MAX_NOTICE_CHARS]
        if any("rate-limit" in n.lower() or "rate limit" in n.lower() for n in notices):
            self._client.limiter.pause(self._rate_limit_pause_s)
        log.info(
            "%s: notice instead of results for %s: %s",
            self.name,
            query.describe(),
            reason,
            extra={"action": "scrape_notice", "scraper": self.name},
        )
        return ScrapeResult((), soft_failure=f"{self.name}: {reason}")


def _config_forms(base_url: str) -> tuple[str, ...]:
    """The addon's config segment(s) after the origin, as written and as URL-encoded."""
    try:
        url = URL(base_url.rstrip("/"))
    except ValueError:
        return ()
    forms = {url.path.strip("/"), url.raw_path.strip("/")}
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


def masked_error(exc: UpstreamError, secrets: tuple[str, ...]) -> UpstreamError:
    """The same error (same type and fields) with every ``secrets`` string masked."""

    def mask(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    if isinstance(exc, RateLimited):
        return RateLimited(
            exc.service, mask(exc.url), exc.retry_after_s, method=exc.method, body=exc.body
        )
    return type(exc)(
        exc.service,
        exc.status,
        mask(exc.url),
        mask(exc.reason),
        method=exc.method,
        retry_after_s=exc.retry_after_s,
        body=exc.body,
    )


def _is_notice(stream: _Stream) -> bool:
    return bool(stream.name or stream.description or stream.title)


def _notice_text(stream: _Stream) -> str:
    parts = [stream.name, stream.description or stream.title or ""]
    text = " ".join(" ".join(p.split()) for p in parts if p)
    return text[:MAX_NOTICE_CHARS]


def _stem(name: str) -> str:
    return _NOT_ALNUM_RE.sub("", _EXTENSION_RE.sub("", name)).lower()
