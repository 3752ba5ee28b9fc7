"""Zilean scraper: DMM hash lists through ``/dmm/filtered``."""

from __future__ import annotations

import logging
import re

from pydantic import BaseModel, ConfigDict, ValidationError

from riven_async.core.http import HttpClient
from riven_async.errors import UpstreamPayloadError
from riven_async.services.scrapers import (
    ParseError,
    ScrapedRelease,
    ScrapeQuery,
    ScrapeResult,
    client_blocked_for,
    client_saturated,
    merge_releases,
    normalize_infohash,
)

log = logging.getLogger(__name__)

MAX_RESULTS = 1000
_SIZE_RE = re.compile(r"\s*(\d{1,19})\s*")


class _TorrentInfo(BaseModel):
    """The two fields Riven reads, plus the size (a string of bytes in Zilean's JSON)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    raw_title: str
    info_hash: str
    size: str | int | None = None


def zilean_params(query: ScrapeQuery) -> dict[str, str] | None:
    """``/dmm/filtered`` parameters: the IMDb id (else the title) with season and episode."""
    params: dict[str, str] = {}
    if query.imdb_id:
        params["ImdbId"] = query.imdb_id
    elif query.title.strip():
        params["Query"] = " ".join(query.title.split())
        if query.year and query.kind == "movie":
            params["Year"] = str(query.year)
    else:
        return None
    if query.kind == "movie":
        params["Category"] = "movie"
    else:
        params["Category"] = "tvSeries"
        params["Season"] = str(query.season)
        if query.kind == "episode":
            params["Episode"] = str(query.episode)
    return params


class ZileanScraper:
    """Self-hosted Zilean; its search routes swallow errors into ``[]``, so "empty" is weak."""

    def __init__(
        self, client: HttpClient, *, name: str | None = None, max_results: int = MAX_RESULTS
    ) -> None:
        self._client = client
        self.name = name or client.name
        self._max_results = max_results

    def __repr__(self) -> str:
        return f"<ZileanScraper {self.name}>"

    def supports(self, query: ScrapeQuery) -> bool:
        return zilean_params(query) is not None

    def blocked_for(self) -> float:
        return client_blocked_for(self._client)

    def saturated(self) -> bool:
        return client_saturated(self._client)

    async def scrape(self, query: ScrapeQuery) -> ScrapeResult:
        params = zilean_params(query)
        if params is None:
            return ScrapeResult()
        response = await self._client.get("dmm/filtered", params=params)
        body = response.json()
        if not isinstance(body, list):
            raise UpstreamPayloadError(
                self.name, response.status, response.url, "expected a JSON list of torrents"
            )
        releases = []
        skipped = 0
        for raw in body[: self._max_results]:
            release = read_torrent_info(raw, self.name)
            if release is None:
                skipped += 1
            else:
                releases.append(release)
        if skipped:
            log.debug(
                "%s: skipped %d unreadable torrents for %s",
                self.name,
                skipped,
                query.describe(),
                extra={"action": "scrape_skip", "scraper": self.name, "skipped": skipped},
            )
        return ScrapeResult(merge_releases(releases))


def read_torrent_info(raw: object, source: str) -> ScrapedRelease | None:
    """One ``TorrentInfo`` record as a release, or None if it lacks a title or hash."""
    try:
        info = _TorrentInfo.model_validate(raw)
        infohash = normalize_infohash(info.info_hash)
    except (ValidationError, ParseError):
        return None
    title = " ".join(info.raw_title.split())
    if not title:
        return None
    return ScrapedRelease(
        infohash=infohash,
        raw_title=title[:1000],
        source=source,
        size_bytes=_size(info.size),
        provider="DMM",
    )


def _size(value: str | int | None) -> int | None:
    if isinstance(value, int):
        return value if value > 0 else None
    match = _SIZE_RE.fullmatch(value) if value else None
    size = int(match[1]) if match else 0
    return size or None
