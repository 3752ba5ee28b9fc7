"""Settings: one TOML file, strict sections, env overrides ``RIVEN_<SECTION>__<KEY>``."""

from __future__ import annotations

import os
import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from riven_async.errors import ConfigError

EX_CONFIG = 78
ENV_PREFIX = "RIVEN_"
_WINDOW_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_window(text: str) -> tuple[int, float]:
    """Parse ``"250/60s"`` (or ``"12/1s"``, ``"60/1h"``) into ``(limit, seconds)``."""
    match = _WINDOW_RE.match(text)
    if match is None:
        raise ValueError(f"rate window {text!r} must look like '250/60s' (count/seconds)")
    limit, span, unit = int(match[1]), float(match[2]), match[3] or "s"
    seconds = span * _UNIT_S[unit]
    if limit < 1 or seconds <= 0:
        raise ValueError(f"rate window {text!r} needs a positive count and length")
    return limit, seconds


def _check_windows(value: list[str]) -> list[str]:
    for text in value:
        parse_window(text)
    return value


RateWindows = Annotated[list[str], AfterValidator(_check_windows)]
PositiveSeconds = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    """Every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)
    api_key: SecretStr = SecretStr("")
    metrics_public: bool = False
    shutdown_timeout_s: PositiveSeconds = 10.0
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_plex_body_bytes: int = Field(default=16_777_216, ge=1024)
    slow_request_s: PositiveSeconds = 1.0
    pid_file: Path | None = None


class DatabaseSection(Section):
    url: SecretStr | None = None
    data_dir: Path | None = None
    embedded_port: int = Field(default=0, ge=0, le=65535)
    pool_min: int = Field(default=2, ge=0)
    pool_max: int = Field(default=10, ge=1)
    command_timeout_s: PositiveSeconds = 30.0
    statement_timeout_s: PositiveSeconds = 30.0
    connection_lifetime_s: PositiveSeconds = 3600.0
    connect_timeout_s: PositiveSeconds = 10.0
    reconnect_interval_s: PositiveSeconds = 2.0

    @field_validator("url", mode="before")
    @classmethod
    def _empty_url_is_embedded(cls, value: Any) -> Any:
        return None if value in ("", None) else value


class LoggingSection(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class UpstreamSection(Section):
    """One upstream HTTP service: where it is, its key, and the limits it enforces."""

    enabled: bool = True
    base_url: str = ""
    api_key: SecretStr = SecretStr("")
    rate_limits: RateWindows = Field(default_factory=list)
    timeout_s: PositiveSeconds = 15.0
    connect_timeout_s: PositiveSeconds = 5.0
    max_connections: int = Field(default=10, ge=1)
    max_retries: int = Field(default=3, ge=0)
    backoff_base_s: PositiveSeconds = 0.5
    backoff_max_s: PositiveSeconds = 30.0
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_s: PositiveSeconds = 30.0
    cache_ttl_s: dict[str, float] = Field(default_factory=dict)
    cache_stale_s: float = Field(default=3600.0, ge=0)


def _windows(*windows: str) -> Any:
    return Field(default_factory=lambda: list(windows))


def _ttls(**ttls: float) -> Any:
    return Field(default_factory=lambda: dict(ttls))


# One subclass per upstream so a partial [upstreams.X] table keeps that upstream's defaults.
class TmdbSection(UpstreamSection):
    base_url: str = "https://api.themoviedb.org/3"
    rate_limits: RateWindows = _windows("40/1s")
    max_connections: int = Field(default=20, ge=1)
    cache_ttl_s: dict[str, float] = _ttls(movie=21600.0, tv=7200.0, season=7200.0, find=86400.0)


class TvmazeSection(UpstreamSection):
    base_url: str = "https://api.tvmaze.com"
    rate_limits: RateWindows = _windows("20/10s")
    cache_ttl_s: dict[str, float] = _ttls(show=7200.0, lookup=86400.0)


class TorrentioSection(UpstreamSection):
    base_url: str = "https://torrentio.strem.fun"
    rate_limits: RateWindows = _windows("150/60s", "5000/1d")


class CometSection(UpstreamSection):
    enabled: bool = False
    rate_limits: RateWindows = _windows("300/60s")


class MediaFusionSection(UpstreamSection):
    enabled: bool = False
    rate_limits: RateWindows = _windows("1000/60s")


class TorznabSection(UpstreamSection):
    enabled: bool = False
    rate_limits: RateWindows = _windows("300/60s")
    cache_ttl_s: dict[str, float] = _ttls(torznab_caps=86400.0)


class ZileanSection(UpstreamSection):
    enabled: bool = False
    base_url: str = "http://127.0.0.1:8181"
    rate_limits: RateWindows = _windows("500/60s")


class RealDebridSection(UpstreamSection):
    enabled: bool = False
    base_url: str = "https://api.real-debrid.com/rest/1.0"
    rate_limits: RateWindows = _windows("250/60s")


class AllDebridSection(UpstreamSection):
    enabled: bool = False
    base_url: str = "https://api.alldebrid.com"
    rate_limits: RateWindows = _windows("12/1s", "600/60s")


class TorBoxSection(UpstreamSection):
    enabled: bool = False
    base_url: str = "https://api.torbox.app/v1/api"
    rate_limits: RateWindows = _windows("300/60s")


class PlexSection(UpstreamSection):
    enabled: bool = False
    base_url: str = "http://127.0.0.1:32400"


class JellyfinSection(UpstreamSection):
    enabled: bool = False
    base_url: str = "http://127.0.0.1:8096"


class EmbySection(UpstreamSection):
    enabled: bool = False
    base_url: str = "http://127.0.0.1:8096"


class OverseerrSection(UpstreamSection):
    enabled: bool = False
    base_url: str = "http://127.0.0.1:5055/api/v1"
    rate_limits: RateWindows = _windows("1000/300s")


class UpstreamsSection(Section):
    """Every upstream the daemon may talk to; ``enabled = false`` switches one off."""

    tmdb: TmdbSection = Field(default_factory=TmdbSection)
    tvmaze: TvmazeSection = Field(default_factory=TvmazeSection)
    torrentio: TorrentioSection = Field(default_factory=TorrentioSection)
    comet: CometSection = Field(default_factory=CometSection)
    mediafusion: MediaFusionSection = Field(default_factory=MediaFusionSection)
    torznab: TorznabSection = Field(default_factory=TorznabSection)
    zilean: ZileanSection = Field(default_factory=ZileanSection)
    realdebrid: RealDebridSection = Field(default_factory=RealDebridSection)
    alldebrid: AllDebridSection = Field(default_factory=AllDebridSection)
    torbox: TorBoxSection = Field(default_factory=TorBoxSection)
    plex: PlexSection = Field(default_factory=PlexSection)
    jellyfin: JellyfinSection = Field(default_factory=JellyfinSection)
    emby: EmbySection = Field(default_factory=EmbySection)
    overseerr: OverseerrSection = Field(default_factory=OverseerrSection)


def _check_folder_name(value: str) -> str:
    if value in ("", ".", "..") or "/" in value or "\\" in value or "\0" in value:
        raise ValueError(f"{value!r} must be one plain folder name (no slashes, not . or ..)")
    return value


FolderName = Annotated[str, AfterValidator(_check_folder_name)]


class LibrarySection(Section):
    """Where the debrid mount is and where the Plex-style symlink library goes."""

    mount_dir: Path = Path("/mnt/debrid/__all__")
    root: Path = Path("/mnt/library")
    movies_dir: FolderName = "Movies"
    shows_dir: FolderName = "Shows"
    mount_scan_ttl_s: PositiveSeconds = 5.0
    mount_wait_timeout_s: PositiveSeconds = 300.0
    verify_interval_s: float = Field(default=3600.0, ge=0)
    verify_batch: int = Field(default=500, ge=1, le=10_000)


Resolution = Literal["2160p", "1080p", "720p", "480p", "360p", "unknown"]
TrashQuality = Literal["CAM", "TS", "TC", "SCR", "R5", "PDTV"]
Codec = Literal["avc", "hevc", "av1", "xvid", "mpeg"]
_QUALITY_ALIASES = {"TELESYNC": "TS", "TELECINE": "TC", "SCREENER": "SCR", "HDCAM": "CAM"}
_CODEC_ALIASES = {"x264": "avc", "h264": "avc", "x265": "hevc", "h265": "hevc"}
_LANGUAGE_RE = re.compile(r"^(?:[a-z]{2,3}(?:-[a-z]{2,4})?|anime|non_anime|common|all)$")


def _normalised(value: Any, aliases: dict[str, str], upper: bool) -> Any:
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for item in value:
        if isinstance(item, str):
            item = item.strip().upper() if upper else item.strip().lower()
            item = aliases.get(item, item)
        out.append(item)
    return out


def _unique(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("must not list the same value twice")
    return value


def _check_patterns(value: list[str]) -> list[str]:
    for pattern in value:
        # rank-torrent-name's convention: /.../ is case-sensitive, anything else is not.
        body = pattern[1:-1] if len(pattern) > 1 and pattern[0] == pattern[-1] == "/" else pattern
        if not body:
            raise ValueError("an empty pattern would match every title")
        try:
            re.compile(body)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
    return value


def _check_languages(value: list[str]) -> list[str]:
    for code in value:
        if not _LANGUAGE_RE.match(code):
            raise ValueError(
                f"{code!r} is not a language code (like 'en', 'fr') or a group "
                "(anime, non_anime, common, all)"
            )
    return _unique(value)


def _default_resolutions() -> list[Resolution]:
    return ["1080p", "720p"]


def _default_exclusions() -> list[TrashQuality]:
    return ["CAM", "TS", "TC", "SCR"]


Patterns = Annotated[list[str], AfterValidator(_check_patterns)]
Languages = Annotated[list[str], AfterValidator(_check_languages)]


class RankingSection(Section):
    """The ranking profile: which releases are acceptable, and in what order."""

    resolutions: Annotated[list[Resolution], AfterValidator(_unique)] = Field(
        default_factory=_default_resolutions, min_length=1
    )
    exclude_qualities: Annotated[list[TrashQuality], AfterValidator(_unique)] = Field(
        default_factory=_default_exclusions
    )
    exclude_terms: Patterns = Field(default_factory=list)
    preferred_terms: Patterns = Field(default_factory=list)
    preferred_codecs: Annotated[list[Codec], AfterValidator(_unique)] = Field(default_factory=list)
    preferred_languages: Languages = Field(default_factory=list)
    exclude_languages: Languages = Field(default_factory=list)
    allow_dolby_vision_only: bool = False
    movie_min_size_mb: float = Field(default=200.0, ge=0)
    movie_max_size_gb: float = Field(default=0.0, ge=0)
    episode_min_size_mb: float = Field(default=40.0, ge=0)
    episode_max_size_gb: float = Field(default=0.0, ge=0)
    min_seeders: int = Field(default=0, ge=0)
    max_results: int = Field(default=10, ge=1, le=1000)
    title_similarity: float = Field(default=0.85, gt=0, le=1)
    min_rank: int = -10000

    @field_validator("exclude_qualities", mode="before")
    @classmethod
    def _quality_aliases(cls, value: Any) -> Any:
        return _normalised(value, _QUALITY_ALIASES, upper=True)

    @field_validator("preferred_codecs", mode="before")
    @classmethod
    def _codec_aliases(cls, value: Any) -> Any:
        return _normalised(value, _CODEC_ALIASES, upper=False)

    @field_validator("resolutions", "preferred_languages", "exclude_languages", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return _normalised(value, {"4k": "2160p"}, upper=False)


def _check_backoff(value: list[float]) -> list[float]:
    if value != sorted(value):
        raise ValueError("backoff steps must not get shorter")
    return value


def _check_feed_path(value: str) -> str:
    if "{indexer}" not in value:
        raise ValueError("must contain '{indexer}' (Jackett: /api/v2.0/indexers/{indexer}/"
                         "results/torznab/api, Prowlarr: /{indexer}/api)")
    return value


class TorznabScrapingSection(Section):
    """How the Torznab scraper searches Jackett or Prowlarr."""

    indexers: list[str] = Field(default_factory=list)
    feed_path: Annotated[str, AfterValidator(_check_feed_path)] = (
        "/api/v2.0/indexers/{indexer}/results/torznab/api"
    )
    movie_categories: list[int] = Field(default_factory=lambda: [2000])
    tv_categories: list[int] = Field(default_factory=lambda: [5000])
    search_limit: int = Field(default=100, ge=1, le=1000)
    max_link_fetches: int = Field(default=25, ge=0)
    link_origins: list[str] = Field(default_factory=list)
    torrent_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)


class ScrapingSection(Section):
    """The scrape step: fan-out timeouts, scraper health, season packs, re-scrape schedule."""

    timeout_s: PositiveSeconds = 10.0
    timeouts_s: dict[str, PositiveSeconds] = Field(default_factory=dict)
    budget: int = Field(default=0, ge=0)
    health_alpha: float = Field(default=0.2, gt=0, le=1)
    health_recovery_s: PositiveSeconds = 600.0
    notice_pause_s: PositiveSeconds = 60.0
    partial_retry_s: PositiveSeconds = 300.0
    season_packs: bool = True
    season_pack_min_episodes: int = Field(default=2, ge=1)
    season_pack_rescrape_s: PositiveSeconds = 1800.0
    fresh_request_s: PositiveSeconds = 300.0
    fresh_request_window_s: float = Field(default=3600.0, ge=0)
    just_aired_s: PositiveSeconds = 300.0
    just_aired_window_s: float = Field(default=14400.0, ge=0)
    others_s: PositiveSeconds = 1800.0
    backoff_s: Annotated[list[PositiveSeconds], AfterValidator(_check_backoff)] = Field(
        default_factory=lambda: [1800.0, 7200.0, 21600.0], min_length=1
    )
    max_backoff_s: PositiveSeconds = 86400.0
    torznab: TorznabScrapingSection = Field(default_factory=TorznabScrapingSection)


class WebhooksSection(Section):
    """What inbound webhooks may do beyond requesting and re-checking."""

    follow_deletes: bool = False
    accept_pending: bool = False


def _check_path_map(value: dict[str, str]) -> dict[str, str]:
    for local, remote in value.items():
        if not local.startswith("/") or not remote.startswith("/"):
            raise ValueError(f"path_map {local!r} = {remote!r}: both sides must be absolute paths")
    return value


DebridName = Literal["realdebrid", "torbox", "alldebrid"]
MediaServerName = Literal["plex", "jellyfin", "emby"]
DEBRID_ORDER: tuple[DebridName, ...] = ("realdebrid", "torbox", "alldebrid")
MEDIA_SERVERS: tuple[MediaServerName, ...] = ("plex", "jellyfin", "emby")


class DebridSection(Section):
    """Which debrid services are tried, in which order, and which files a torrent must hold."""

    services: Annotated[list[DebridName], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(DEBRID_ORDER)
    )
    candidates: int = Field(default=5, ge=1, le=50)
    max_attempts_per_service: int = Field(default=5, ge=1, le=50)
    not_cached_retry_s: PositiveSeconds = 3600.0
    movie_min_file_mb: float = Field(default=100.0, ge=0)
    movie_max_file_gb: float = Field(default=0.0, ge=0)
    episode_min_file_mb: float = Field(default=20.0, ge=0)
    episode_max_file_gb: float = Field(default=0.0, ge=0)


class MediaServersSection(Section):
    """Which media servers are asked to scan new links, and how their scans are grouped."""

    servers: Annotated[list[MediaServerName], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(MEDIA_SERVERS)
    )
    coalesce_window_s: float = Field(default=10.0, ge=0)
    coalesce_max_s: float = Field(default=300.0, ge=0)
    path_map: Annotated[dict[str, str], AfterValidator(_check_path_map)] = Field(
        default_factory=dict
    )


class ClockSection(Section):
    """Run on scaled time (demo, benchmarks against the sims); ``speed = 1`` is real time."""

    speed: float = Field(default=1.0, gt=0)
    start: str = ""
    anchor: float = 0.0

    @field_validator("start")
    @classmethod
    def _iso_start(cls, value: str) -> str:
        if value:
            datetime.fromisoformat(value)
        return value


def _check_clock_time(value: str) -> str:
    if not re.fullmatch(r"(?:[01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError(f"{value!r} must be a local time like '20:00' (HH:MM, 24 h)")
    return value


def _check_regions(value: list[str]) -> list[str]:
    for code in value:
        if not re.fullmatch(r"[A-Za-z]{2}", code):
            raise ValueError(f"{code!r} is not a two-letter country code (like 'US')")
    return _unique([code.upper() for code in value])


class IndexerSection(Section):
    """How shows and movies are read from TMDB, with exact air times from TVMaze."""

    hiatus_after_s: PositiveSeconds = 90 * 86400.0
    settle_s: float = Field(default=7 * 86400.0, ge=0)
    include_specials: bool = False
    language: str = "en-US"
    release_regions: Annotated[list[str], AfterValidator(_check_regions)] = Field(
        default_factory=list
    )
    release_estimate_s: float = Field(default=90 * 86400.0, ge=0)
    fallback_air_time: Annotated[str, AfterValidator(_check_clock_time)] = "20:00"
    tvmaze_enabled: bool = True


class DetectionSection(Section):
    """When shows and movies are checked again, and how new episodes are noticed."""

    enabled: bool = True
    changes_interval_s: PositiveSeconds = 600.0
    tmdb_changes_interval_s: PositiveSeconds = 3600.0
    changes_window_s: PositiveSeconds = 14 * 86400.0
    release_delay_s: float = Field(default=900.0, ge=0)
    ongoing_interval_s: PositiveSeconds = 7 * 86400.0
    hiatus_interval_s: PositiveSeconds = 14 * 86400.0
    ended_interval_s: PositiveSeconds = 30 * 86400.0
    fresh_request_interval_s: PositiveSeconds = 3600.0
    fresh_request_window_s: float = Field(default=86400.0, ge=0)
    missing_recheck_min_s: PositiveSeconds = 1800.0
    missing_recheck_max_s: PositiveSeconds = 86400.0
    inexact_lead_s: float = Field(default=12 * 3600.0, ge=0)
    tmdb_routine_calls_per_day: float = Field(default=4000.0, gt=0)
    tvmaze_routine_calls_per_day: float = Field(default=2000.0, gt=0)
    batch_size: int = Field(default=200, ge=1, le=10_000)
    check_fallback_s: PositiveSeconds = 6 * 3600.0


class WorkersSection(Section):
    """How many jobs of each stage run at once, and how the queue is watched."""

    index: int = Field(default=4, ge=1, le=256)
    scrape: int = Field(default=8, ge=1, le=256)
    download: int = Field(default=4, ge=1, le=256)
    link: int = Field(default=2, ge=1, le=256)
    scan: int = Field(default=1, ge=1, le=256)
    poll_interval_s: PositiveSeconds = 30.0
    lease_s: float = Field(default=60.0, ge=5.0)
    retry_base_s: PositiveSeconds = 30.0
    retry_cap_s: PositiveSeconds = 3600.0
    stall_after_s: PositiveSeconds = 600.0


class MaintenanceSection(Section):
    """Housekeeping: how long finished records are kept, and how often it runs."""

    interval_s: PositiveSeconds = 600.0
    inbox_keep_s: PositiveSeconds = 7 * 86400.0
    failed_jobs_keep_s: PositiveSeconds = 30 * 86400.0
    processes_keep_s: PositiveSeconds = 86400.0


class CredentialsSource(PydanticBaseSettingsSource):
    """systemd ``LoadCredential=`` files: ``$CREDENTIALS_DIRECTORY/RIVEN_SERVER__API_KEY``.

    The file name is the env variable's name (the ``RIVEN_`` prefix is optional, case does
    not matter); the file's content is the value, trailing newline stripped.
    """

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory or not Path(directory).is_dir():
            return {}
        data: dict[str, Any] = {}
        for entry in sorted(Path(directory).iterdir()):
            name = entry.name.lower().removeprefix(ENV_PREFIX.lower())
            parts = name.split("__")
            if len(parts) < 2 or not entry.is_file():
                continue
            node = data
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = entry.read_text(encoding="utf-8").rstrip("\n")
        return data


class Settings(BaseSettings):
    """The whole configuration; one instance per (re)load, never mutated."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    server: ServerSection = Field(default_factory=ServerSection)
    database: DatabaseSection = Field(default_factory=DatabaseSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    upstreams: UpstreamsSection = Field(default_factory=UpstreamsSection)
    library: LibrarySection = Field(default_factory=LibrarySection)
    ranking: RankingSection = Field(default_factory=RankingSection)
    scraping: ScrapingSection = Field(default_factory=ScrapingSection)
    webhooks: WebhooksSection = Field(default_factory=WebhooksSection)
    debrid: DebridSection = Field(default_factory=DebridSection)
    mediaservers: MediaServersSection = Field(default_factory=MediaServersSection)
    clock: ClockSection = Field(default_factory=ClockSection)
    indexer: IndexerSection = Field(default_factory=IndexerSection)
    detection: DetectionSection = Field(default_factory=DetectionSection)
    workers: WorkersSection = Field(default_factory=WorkersSection)
    maintenance: MaintenanceSection = Field(default_factory=MaintenanceSection)

    toml_path: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: env, then systemd credentials, then the file (whose example
        # ships empty keys that a credential must be able to fill).
        sources: list[PydanticBaseSettingsSource] = [
            init_settings, env_settings, CredentialsSource(settings_cls)
        ]
        if cls.toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_path))
        return tuple(sources)

    def secrets(self) -> list[str]:
        """Every non-empty secret value in this config (for log redaction)."""
        found: list[str] = []
        _collect_secrets(self, found)
        return found


def _collect_secrets(model: BaseModel, found: list[str]) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            raw = value.get_secret_value()
            if raw:
                found.append(raw)
        elif isinstance(value, BaseModel):
            _collect_secrets(value, found)


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/riven-async/config.toml`` (``~/.config`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "riven-async" / "config.toml"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/riven-async`` (``~/.local/share`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "riven-async"


def example_config_text() -> str:
    """The commented example config shipped with the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "config.example.toml", here.parent / "config.example.toml"):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise ConfigError(here, "config.example.toml is missing from the installation")


def load_settings(path: Path) -> Settings:
    """Read and validate ``path`` (plus env overrides); raise ConfigError naming the key."""
    if not path.is_file():
        raise ConfigError(path, "file not found" if not path.exists() else "not a regular file")
    try:
        with path.open("rb") as handle:
            tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror}") from None

    class _FileSettings(Settings):
        toml_path: ClassVar[Path | None] = path

    try:
        loaded = _FileSettings()
    except ValidationError as exc:
        raise ConfigError.from_validation(path, exc) from None
    except ValueError as exc:  # env values that are not valid JSON for nested fields
        raise ConfigError(path, str(exc)) from None
    _check_consistency(path, loaded)
    return loaded


def _check_consistency(path: Path, settings: Settings) -> None:
    db = settings.database
    if db.pool_min > db.pool_max:
        raise ConfigError(path, "must not exceed database.pool_max", key="database.pool_min")
    library = settings.library
    if library.root.is_relative_to(library.mount_dir):
        raise ConfigError(path, "must not be the debrid mount or inside it", key="library.root")
    if not settings.server.api_key.get_secret_value():
        raise ConfigError(
            path,
            "is empty; webhooks and the API need a key (riven-async config init makes one)",
            key="server.api_key",
        )


def load_settings_from_dict(data: dict[str, Any]) -> Settings:
    """Build settings from a plain dict (tests, demo); no file, no env."""
    return Settings.model_validate(data)


class LiveSettings:
    """The settings in force now; SIGHUP swaps them after the new file validates."""

    def __init__(self, settings: Settings, path: Path | None = None) -> None:
        self.current = settings
        self.path = path
        self.generation = 0

    def reload(self) -> Settings:
        """Re-read the file; on ConfigError the running settings stay in force."""
        if self.path is None:
            raise ConfigError("<none>", "the daemon was started without a config file")
        fresh = load_settings(self.path)
        self.current = fresh
        self.generation += 1
        return fresh
