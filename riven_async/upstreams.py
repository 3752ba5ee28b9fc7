"""Build one HttpClient per enabled upstream from the config (used by the composition root)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Final

from yarl import URL

from riven_async.config import Settings, UpstreamSection, UpstreamsSection, parse_window
from riven_async.core.clock import Clock
from riven_async.core.http import ApiKeyAuth, HttpClient, HttpStats, Secret, UpstreamPolicy

log = logging.getLogger(__name__)

_BEARER = ApiKeyAuth("header", "Authorization", "Bearer {key}")
_JSON = (("Accept", "application/json"),)

# Where each upstream expects its key (upstreams.md). The stremio addons (torrentio,
# comet, mediafusion) carry keys inside their config path segment, built by the service.
DEFAULT_AUTH: Final[Mapping[str, ApiKeyAuth]] = MappingProxyType(
    {
        "realdebrid": _BEARER,
        "alldebrid": _BEARER,
        "torbox": _BEARER,
        "torznab": ApiKeyAuth("query", "apikey"),
        "zilean": ApiKeyAuth("header", "X-Api-Key"),
        "plex": ApiKeyAuth("header", "X-Plex-Token"),
        # Jellyfin 12 drops the legacy X-Emby-Token / api_key forms.
        "jellyfin": ApiKeyAuth("header", "Authorization", 'MediaBrowser Token="{key}"'),
        "emby": ApiKeyAuth("header", "X-Emby-Token"),
        "overseerr": ApiKeyAuth("header", "X-Api-Key"),
    }
)
_TMDB_V3 = ApiKeyAuth("query", "api_key")
STREMIO_ADDONS = frozenset({"torrentio", "comet", "mediafusion"})
# Shorter paths are an addon's mount point ("/stremio"), not a config that may hold a key.
_MIN_ADDON_CONFIG_CHARS = 8


def default_auth(name: str, api_key: str) -> ApiKeyAuth | None:
    """How ``name`` takes its key; TMDB accepts a v4 read token (a JWT) or a v3 key."""
    if name == "tmdb":
        return _BEARER if api_key.startswith("eyJ") or api_key.count(".") == 2 else _TMDB_V3
    return DEFAULT_AUTH.get(name)


def addon_config_segment(base_url: str) -> str | None:
    """A stremio addon's config path after its origin (may carry a debrid key), or None."""
    try:
        path = URL(base_url.strip()).path.strip("/")
    except ValueError:
        return None
    return path if len(path) >= _MIN_ADDON_CONFIG_CHARS else None


def policy_from_section(
    name: str,
    section: UpstreamSection,
    *,
    scrub: Iterable[str] = (),
    auth: ApiKeyAuth | None = None,
    headers: Mapping[str, str] | None = None,
) -> UpstreamPolicy:
    """The plain-typed policy for one ``[upstreams.<name>]`` section.

    ``scrub`` adds strings to mask in messages (other upstreams' keys, which may travel
    inside a stremio addon's config segment); a stremio addon's own config segment is
    always masked. ``auth`` and ``headers`` override the defaults for this upstream.
    """
    key = section.api_key.get_secret_value()
    masked = list(scrub)
    if name in STREMIO_ADDONS:
        segment = addon_config_segment(section.base_url)
        if segment is not None:
            masked.append(segment)
    return UpstreamPolicy(
        name=name,
        base_url=section.base_url,
        windows=tuple(parse_window(text) for text in section.rate_limits),
        timeout_s=section.timeout_s,
        connect_timeout_s=section.connect_timeout_s,
        max_connections=section.max_connections,
        max_retries=section.max_retries,
        backoff_base_s=section.backoff_base_s,
        backoff_max_s=section.backoff_max_s,
        breaker_failures=section.breaker_failures,
        breaker_reset_s=section.breaker_reset_s,
        cache_ttl_s=tuple(sorted(section.cache_ttl_s.items())),
        cache_stale_s=section.cache_stale_s,
        api_key=Secret(key),
        auth=auth if auth is not None else default_auth(name, key),
        headers=tuple((headers if headers is not None else dict(_JSON)).items()),
        scrub=tuple(Secret(s) for s in dict.fromkeys(masked) if s and s != key),
    )


def _addon_segments(upstreams: UpstreamsSection) -> list[str]:
    found: list[str] = []
    for name in sorted(STREMIO_ADDONS):
        section = getattr(upstreams, name, None)
        if isinstance(section, UpstreamSection) and section.enabled:
            segment = addon_config_segment(section.base_url)
            if segment is not None:
                found.append(segment)
    return found


class UpstreamClients:
    """Every enabled upstream's client, by name; closes them together."""

    def __init__(self, clients: Mapping[str, HttpClient]) -> None:
        self._clients = dict(clients)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> UpstreamClients:
        """One client per ``[upstreams.*]`` section with ``enabled = true``.

        Call it inside the running loop (aiohttp sessions are bound to it) and close the
        result with ``aclose()`` (the composition root does so in a cleanup context).
        """
        upstreams = settings.upstreams
        # Every client masks every addon's config too (a key may travel in another's URL).
        secrets = [*settings.secrets(), *_addon_segments(upstreams)]
        clients: dict[str, HttpClient] = {}
        for name in type(upstreams).model_fields:
            section = getattr(upstreams, name)
            if not isinstance(section, UpstreamSection) or not section.enabled:
                continue
            policy = policy_from_section(name, section, scrub=secrets)
            clients[name] = HttpClient(policy, clock=clock)
        log.info(
            "upstream clients ready: %s",
            ", ".join(sorted(clients)) or "none",
            extra={"action": "upstreams_ready", "upstreams": sorted(clients)},
        )
        return cls(clients)

    def __getitem__(self, name: str) -> HttpClient:
        try:
            return self._clients[name]
        except KeyError:
            raise KeyError(f"upstream {name!r} is not enabled") from None

    def __contains__(self, name: object) -> bool:
        return name in self._clients

    def __iter__(self) -> Iterator[str]:
        return iter(self._clients)

    def __len__(self) -> int:
        return len(self._clients)

    def __repr__(self) -> str:
        return f"<UpstreamClients {', '.join(self._clients) or 'none'}>"

    def get(self, name: str) -> HttpClient | None:
        return self._clients.get(name)

    def stats(self) -> dict[str, HttpStats]:
        return {name: client.stats() for name, client in self._clients.items()}

    def stats_dict(self) -> dict[str, dict[str, Any]]:
        """``stats()`` as JSON-ready dicts, for ``GET /metrics``."""
        return {name: s.to_dict() for name, s in self.stats().items()}

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def __aenter__(self) -> UpstreamClients:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
