"""The DOWNLOAD step: the best cached release of a movie or an episode into a debrid account.

The item's best releases (blacklist left out) go to the ``DebridChain``: services in the
``[debrid]`` order, ``[RD+]``-marked candidates first, paused services skipped. A season
pack (the scrape said so) is fetched once for the whole season: its files are recorded per
episode, and every episode that has the pack among its releases moves on with it.

No torrent is added twice: the item and the candidates' infohashes are locked while the
step runs; a ready download already recorded for one of the candidates is reused without
asking any service when its files serve the item (the next season of a multi-season pack
finds its files among those recorded for the first); and the services reuse what their
account already holds (a replay after a crash finds its torrent there). What a service
said when asked to add a release (not cached, refused, failed) is kept in the database,
so neither a replay nor the pack's next item asks it again before
``[debrid] not_cached_retry_s`` has passed; after that it is asked afresh, so availability
is never cached. The download row, the state moves and the LINK jobs are written in one
transaction.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from riven_async import config
from riven_async.db.downloads import DebridCheck
from riven_async.domain.media import MediaItem, MediaKind
from riven_async.domain.queue import Job, JobKind, NewJob
from riven_async.domain.releases import Download, DownloadStatus, Release, SelectedFile
from riven_async.domain.states import State
from riven_async.errors import RivenError
from riven_async.pipeline.runtime import Runtime
from riven_async.pipeline.steps.base import DONE, Deferred, Step, StepResult
from riven_async.services.debrid import (
    Acquired,
    Candidate,
    DebridTorrent,
    EpisodeKey,
    FileWant,
    Selection,
    TorrentFile,
)
from riven_async.services.debrid.chain import (
    SETTLED_OUTCOMES,
    AcquireResult,
    Attempt,
    DebridChain,
    Outcome,
    PriorCheck,
    build_services,
)
from riven_async.services.debrid.file_selection import FileClassifier
from riven_async.web.metrics import Labeled, Section

log = logging.getLogger(__name__)

ITEM_LOCK = "download-item"
HASH_LOCK = "download-hash"
# A retry when a service could not answer and named no end to its pause.
UNAVAILABLE_RETRY_S = 60.0
MB = 1024 * 1024
GB = 1024 * MB


class DownloadError(RivenError):
    """The item cannot be downloaded as asked (no service enabled, not a movie or episode)."""


@dataclass(frozen=True, slots=True)
class _Subject:
    """The item, its show, the files wanted and which items a season's files belong to."""

    item: MediaItem
    show: MediaItem | None
    want: FileWant
    # (season, episode) -> item id for every episode the want names (empty for a movie).
    episodes: Mapping[EpisodeKey, int]
    # Episodes of the season waiting for a download (state scraped), besides the item.
    scraped: frozenset[int]
    upgrade: bool

    @property
    def key(self) -> EpisodeKey | None:
        item = self.item
        if item.season_number is None or item.episode_number is None:
            return None
        return item.season_number, item.episode_number


def link_job(item_id: int, download_id: int | None) -> NewJob:
    """The LINK follow-up of one downloaded item."""
    payload = None if download_id is None else {"download_id": download_id}
    return NewJob(JobKind.LINK, item_id=item_id, payload=payload)


def mount_path(torrent: DebridTorrent, file: TorrentFile) -> str:
    """Where ``file`` shows on the mount, relative to it: ``<torrent name>/<inner path>``."""
    inner = torrent.inner_path(file)
    name = torrent.name.strip() or file.path.split("/", 1)[0]
    return f"{name}/{inner}" if name != inner else inner


class DownloadStep:
    """Runs DOWNLOAD jobs; see the module docstring."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._chain: DebridChain | None = None
        self._chain_key: tuple[tuple[str, ...], int] | None = None
        self._retired: list[DebridChain] = []
        self._classifier = FileClassifier()
        self.counts: Counter[str] = Counter()

    @property
    def kind(self) -> JobKind:
        return JobKind.DOWNLOAD

    def chain(self) -> DebridChain:
        """The chain for the ``[debrid]`` services in force (rebuilt only when they change).

        A rebuild keeps nothing of the old services' pauses, so it happens only when the
        order or the budget changes, not on every reload.
        """
        section = self._runtime.settings.debrid
        key = (tuple(section.services), section.max_attempts_per_service)
        if self._chain is None or self._chain_key != key:
            if self._chain is not None:
                self._retired.append(self._chain)
            services = build_services(self._runtime.upstreams, section.services,
                                      clock=self._runtime.clock)
            self._chain = DebridChain(services, locks=self._runtime.locks,
                                      max_attempts_per_service=section.max_attempts_per_service)
            self._chain_key = key
        return self._chain

    async def aclose(self) -> None:
        """Let the services' background deletes finish (before their clients close)."""
        for chain in (*self._retired, *([self._chain] if self._chain else [])):
            await chain.aclose()

    async def run(self, job: Job) -> StepResult:
        if job.item_id is None:
            raise DownloadError(f"download job {job.id} names no item")
        item = await self._runtime.repos.catalog.get(job.item_id)
        if item is None:
            return DONE  # deleted meanwhile
        early = self._early(item)
        if early is not None:
            return early
        async with self._runtime.locks((ITEM_LOCK, item.id)):
            # Another job of this item (or a season pack's) may have moved it meanwhile.
            fresh = await self._runtime.repos.catalog.get(item.id)
            if fresh is None:
                return DONE
            early = self._early(fresh)
            if early is not None:
                return early
            return await self._download(fresh, job.payload or {})

    def _early(self, item: MediaItem) -> StepResult | None:
        """The outcome when the item needs no download (None: it does)."""
        if item.kind not in (MediaKind.MOVIE, MediaKind.EPISODE):
            raise DownloadError(f"item {item.id} is a {item.kind}; only movies and episodes")
        if item.state is State.DOWNLOADED:
            # Downloaded by a season pack, or a replay after the state moved: link it.
            self.counts["already_downloaded"] += 1
            return StepResult(then=[link_job(item.id, None)])
        if item.state is not State.SCRAPED:
            log.info(
                "item %d is %s: nothing to download", item.id, item.state,
                extra={"action": "download_skip", "item_id": item.id, "state": str(item.state)},
            )
            return DONE
        return None

    async def _download(self, item: MediaItem, payload: Mapping[str, Any]) -> StepResult:
        repos, section = self._runtime.repos, self._runtime.settings.debrid
        releases = (await repos.releases.best_for_items([item.id], section.candidates)).get(
            item.id, [])
        if not releases:
            return await self._rescrape(item, "every release is blacklisted")
        subject = await self._subject(item, payload, section)
        async with AsyncExitStack() as held:
            # Sorted, so two items sharing candidates lock them in the same order.
            for infohash in sorted({r.infohash for r in releases}):
                await held.enter_async_context(self._runtime.locks((HASH_LOCK, infohash)))
            reused = await self._reusable(subject, releases, section)
            if reused is not None:
                self.counts["reused_download"] += 1
                return await self._commit(subject, reused, reused.infohash)
            chain = self.chain()
            if not chain.services:
                raise DownloadError("no debrid service is enabled ([debrid] services and "
                                    "[upstreams.<service>] enabled)")
            candidates = [Candidate(r.infohash, r.raw_title, bool(r.cached_on))
                          for r in releases]
            prior = await self._prior_checks(subject, candidates, section)
            result = await chain.acquire(candidates, subject.want, prior=prior,
                                         on_answer=partial(self._keep_answer, subject))
            await self._blacklist(subject, result)
            if result.acquired is None:
                return await self._not_acquired(subject, result)
            return await self._record(subject, result.acquired)

    # -- what the item wants --------------------------------------------------------------

    async def _subject(
        self, item: MediaItem, payload: Mapping[str, Any], section: config.DebridSection
    ) -> _Subject:
        upgrade = bool(payload.get("upgrade"))
        if item.kind is MediaKind.MOVIE:
            want = FileWant.movie(
                min_size_bytes=int(section.movie_min_file_mb * MB),
                max_size_bytes=_max_bytes(section.movie_max_file_gb),
            )
            return _Subject(item, None, want, {}, frozenset(), upgrade)
        season, number = item.season_number, item.episode_number
        if item.show_id is None or season is None or number is None:
            raise DownloadError(f"episode {item.id} has no show, season or episode number")
        repos = self._runtime.repos
        show = await repos.catalog.get(item.show_id)
        if show is None:
            raise DownloadError(f"episode {item.id}: show {item.show_id} is gone")
        bounds: dict[str, Any] = {
            "min_size_bytes": int(section.episode_min_file_mb * MB),
            "max_size_bytes": _max_bytes(section.episode_max_file_gb),
        }
        if not payload.get("pack"):
            return _Subject(item, show, FileWant.episode(season, number, **bounds),
                            {(season, number): item.id}, frozenset(), upgrade)
        # A pack is asked for every aired episode of the season: one add records the files
        # of all of them, so later episodes reuse it without asking the service again.
        entries = await repos.releases.season_status(show.id, season)
        episodes = {
            (season, e.episode_number): e.item_id for e in entries
            if e.episode_number is not None and e.episode_number >= 1
            and e.state is not State.UNRELEASED
        }
        episodes[(season, number)] = item.id
        scraped = frozenset(e.item_id for e in entries
                            if e.state is State.SCRAPED and e.item_id != item.id)
        want = FileWant.season(season, sorted(e for _, e in episodes), partial_ok=True,
                               **bounds)
        return _Subject(item, show, want, episodes, scraped, upgrade)

    # -- reuse ----------------------------------------------------------------------------

    async def _reusable(
        self, subject: _Subject, releases: Sequence[Release], section: config.DebridSection
    ) -> Download | None:
        """A ready download already recorded with a file for the item, best release first.

        Failing that, one recorded for other items (a pack's other season) whose files
        serve the item: its files for the item's episodes are recorded, no service asked.
        An upgrade takes only its best release: the one it is replacing is a candidate too.
        """
        chosen = releases[:1] if subject.upgrade else releases
        found = await self._runtime.repos.downloads.live_on_services(
            section.services, [r.infohash for r in chosen])
        ready: dict[str, list[Download]] = {}
        for download in found:
            if download.status is DownloadStatus.READY:
                ready.setdefault(download.infohash, []).append(download)
        ranked = [d for r in chosen for d in ready.pop(r.infohash, [])]
        for download in ranked:
            if any(f.item_id == subject.item.id for f in download.selected_files):
                return download
        for download in ranked:
            extended = await self._extend(subject, download)
            if extended is not None:
                self.counts["reused_recorded_files"] += 1
                return extended
        return None

    async def _extend(self, subject: _Subject, download: Download) -> Download | None:
        """``download`` with the item's files recorded, if the files recorded hold them."""
        if download.torrent_id is None:
            return None
        # Each recorded file once (a file serving two episodes is recorded twice).
        recorded = list({f.file_id: f for f in download.selected_files}.values())
        files = [TorrentFile(i, f.path, f.size_bytes) for i, f in enumerate(recorded)]
        selection = await self._classifier.select_async(files, subject.want)
        if not selection.satisfies(subject.want):
            return None
        mapped = _files_for(subject, selection, lambda f: recorded[f.id])
        if not any(f.item_id == subject.item.id for f in mapped):
            return None
        return await self._runtime.repos.downloads.record_ready(
            download.id, download.torrent_id, mapped)

    # -- what services said ---------------------------------------------------------------

    async def _prior_checks(
        self, subject: _Subject, candidates: Sequence[Candidate], section: config.DebridSection
    ) -> list[PriorCheck]:
        """What services said about the candidates within ``not_cached_retry_s``."""
        since = self._runtime.clock.now() - timedelta(seconds=section.not_cached_retry_s)
        checks = await self._runtime.repos.downloads.recent_checks(
            section.services, [c.infohash for c in candidates], subject.item.id, since)
        settled = {o.value: o for o in SETTLED_OUTCOMES}
        prior = [PriorCheck(c.infohash, c.service, settled[c.outcome], c.reason)
                 for c in checks if c.outcome in settled]
        self.counts["prior_checks_used"] += len(prior)
        return prior

    async def _keep_answer(self, subject: _Subject, attempt: Attempt) -> None:
        """Store a service's settled answer before the next service is asked (a crash
        right after must not make the replay ask again)."""
        # "No file for the item" holds for this item's want; the rest for every item.
        item_id = subject.item.id if attempt.outcome is Outcome.NO_MATCHING_FILES else None
        await self._runtime.repos.downloads.record_checks([DebridCheck(
            attempt.service, attempt.infohash, attempt.outcome.value, attempt.reason,
            self._runtime.clock.now(), item_id)])

    # -- outcomes -------------------------------------------------------------------------

    async def _record(self, subject: _Subject, acquired: Acquired) -> StepResult:
        """Store the torrent and its files, move the items it serves, queue their links."""
        torrent, selection, item = acquired.torrent, acquired.selection, subject.item

        def selected(file: TorrentFile) -> SelectedFile:
            return SelectedFile(str(file.id), mount_path(torrent, file), file.size)

        files = _files_for(subject, selection, selected)
        # The pack's other episode files (another season's) are kept without an item: a
        # later item finds its files among them instead of asking a service again.
        mapped = {f.file_id for f in files}
        files.extend(selected(f) for f in selection.to_select if str(f.id) not in mapped)
        repos = self._runtime.repos
        async with self._runtime.pool.acquire() as conn, conn.transaction():
            tx = repos.bound_to(conn)
            reservation = await tx.downloads.reserve(item.id, torrent.service, torrent.infohash)
            download = await tx.downloads.record_ready(reservation.download.id,
                                                       torrent.torrent_id, files)
        if download is None:
            raise DownloadError(f"download {reservation.download.id} stopped being live")
        self.counts["acquired"] += 1
        self.counts["acquired_reused" if acquired.reused else "acquired_added"] += 1
        return await self._commit(subject, download, acquired.candidate.infohash)

    async def _commit(self, subject: _Subject, download: Download, infohash: str) -> StepResult:
        """Move the items ``download`` serves to downloaded and queue their LINK jobs.

        Besides the item, a season's episodes move when the torrent is one of their own
        releases (the scrape ranked it for them) and they wait for a download.
        """
        repos, item = self._runtime.repos, subject.item
        has_file = {f.item_id for f in download.selected_files if f.item_id is not None}
        if item.id not in has_file:
            # The torrent holds other episodes but not this one: never pick it again here.
            await repos.releases.blacklist_many(
                [(item.id, infohash, f"no file for {_describe(item)} in the torrent")])
            self.counts["no_file_for_item"] += 1
            served: set[int] = set()
        else:
            served = {item.id}
        others = has_file & subject.scraped
        if others:
            ranked_for = {r.item_id for r in await repos.releases.by_infohashes([infohash])}
            served |= others & ranked_for
        async with self._runtime.pool.acquire() as conn, conn.transaction():
            tx = repos.bound_to(conn)
            moved = await tx.items.set_state_many(sorted(served), State.DOWNLOADED,
                                                  only_from=[State.SCRAPED])
            await tx.jobs.enqueue_many([link_job(i, download.id) for i in moved])
            if subject.show is not None and moved:
                await tx.items.refresh_parent_states([subject.show.id])
        self.counts["items_downloaded"] += len(moved)
        log.info(
            "%s: %s on %s serves %d items", _describe(item), download.infohash, download.service,
            len(moved),
            extra={"action": "download", "item_id": item.id, "service": download.service,
                   "infohash": download.infohash, "moved": len(moved)},
        )
        if item.id not in served:
            return StepResult(again_at=self._runtime.clock.now())  # try the next release
        return DONE

    async def _blacklist(self, subject: _Subject, result: AcquireResult) -> None:
        """Releases refused for legal reasons (451) go for every item that has them; those
        without a file for the item go for the item."""
        acquired = result.acquired.candidate.infohash if result.acquired else None
        repos, item = self._runtime.repos, subject.item
        entries: list[tuple[int, str, str]] = []
        infringing = sorted(result.hashes_with(Outcome.INFRINGING) - {acquired})
        reason = "refused by the debrid service (infringing, HTTP 451)"
        holders: dict[str, set[int]] = {h: {item.id} for h in infringing}
        if infringing:
            for release in await repos.releases.by_infohashes(infringing):
                holders.setdefault(release.infohash, {item.id}).add(release.item_id)
        for infohash, items in sorted(holders.items()):
            entries.extend((i, infohash, reason) for i in sorted(items))
        for infohash in sorted(result.hashes_with(Outcome.NO_MATCHING_FILES) - {acquired}):
            entries.append((item.id, infohash, f"no file for {_describe(item)}"))
        if entries:
            self.counts["blacklisted"] += await repos.releases.blacklist_many(entries)

    async def _not_acquired(self, subject: _Subject, result: AcquireResult) -> StepResult:
        now = self._runtime.clock.now()
        item = subject.item
        if not result.conclusive:
            # A service was paused or failed: the release may be there; wait, do not fail.
            self.counts["deferred"] += 1
            until = result.retry_at or now + timedelta(seconds=UNAVAILABLE_RETRY_S)
            until = max(until, now + timedelta(seconds=1))
            raise Deferred(until, f"debrid services unavailable for {_describe(item)}: "
                           + "; ".join(f"{k}: {v}" for k, v in sorted(result.unavailable.items())))
        remaining = await self._runtime.repos.releases.best_for_items([item.id], 1)
        if not remaining.get(item.id):
            return await self._rescrape(item, "every release was refused")
        tried = {a.infohash for a in result.attempts if a.outcome is not Outcome.OVER_BUDGET}
        refused = (result.hashes_with(Outcome.INFRINGING)
                   | result.hashes_with(Outcome.NO_MATCHING_FILES))
        section = self._runtime.settings.debrid
        if refused & tried:
            self.counts["retry_next"] += 1
            return StepResult(again_at=now)  # the next releases get their turn at once
        self.counts["not_cached"] += 1
        log.info(
            "%s: none of its releases is cached on %s; again in %.0fs", _describe(item),
            ", ".join(s.name for s in self.chain().services), section.not_cached_retry_s,
            extra={"action": "download_none", "item_id": item.id},
        )
        return StepResult(again_at=now + timedelta(seconds=section.not_cached_retry_s))

    async def _rescrape(self, item: MediaItem, why: str) -> StepResult:
        """No usable release is left: back to indexed, and scrape again."""
        moved = await self._runtime.repos.items.set_state_many(
            [item.id], State.INDEXED, only_from=[State.SCRAPED])
        self.counts["rescrape"] += 1
        log.info("%s: %s; scraping again", _describe(item), why,
                 extra={"action": "download_rescrape", "item_id": item.id})
        if not moved:
            return DONE
        return StepResult(then=[NewJob(JobKind.SCRAPE, item_id=item.id)])

    async def metrics_section(self) -> Section:
        """The ``debrid`` metrics: each service's pause (traffic cap, 429, breaker) and counts."""
        now = self._runtime.clock.now()
        services: dict[str, Any] = {}
        for service in self.chain().services:
            paused = service.paused_until
            capped = getattr(service, "capped_until", None)
            services[service.name] = {
                "paused": int(paused is not None),
                "paused_until": 0.0 if paused is None else paused.timestamp(),
                "paused_for_s": 0.0 if paused is None else round((paused - now).total_seconds(), 3),
                "capped": int(capped is not None),
            }
        return {"by_service": Labeled("service", services),
                "downloads": dict(sorted(self.counts.items()))}


def _files_for(
    subject: _Subject, selection: Selection, selected: Callable[[TorrentFile], SelectedFile]
) -> list[SelectedFile]:
    """The selection's files for the subject's items, as ``selected`` records each file."""
    files: list[SelectedFile] = []
    if selection.movie is not None and subject.item.kind is MediaKind.MOVIE:
        files.append(dataclasses.replace(selected(selection.movie), item_id=subject.item.id))
    for match in selection.episodes:
        item_id = subject.episodes.get((match.season, match.episode))
        if item_id is not None:
            files.append(dataclasses.replace(selected(match.file), item_id=item_id))
    return files


def _max_bytes(gigabytes: float) -> int | None:
    return int(gigabytes * GB) if gigabytes > 0 else None


def _describe(item: MediaItem) -> str:
    if item.kind is MediaKind.EPISODE:
        return f"item {item.id} (S{item.season_number or 0:02d}E{item.episode_number or 0:02d})"
    return f"item {item.id} ({item.title})"


async def build(runtime: Runtime, stack: AsyncExitStack) -> Step:
    """The DOWNLOAD step; its services' background deletes finish before the clients close."""
    step = DownloadStep(runtime)
    runtime.metrics.register("debrid", step.metrics_section)
    stack.push_async_callback(step.aclose)
    return step
