"""Try the debrid services in the configured order: likely-cached candidates first, each hash
checked by one caller at a time, paused services skipped rather than waited on."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final, Protocol

from riven_async.core.clock import Clock
from riven_async.core.http import HttpClient
from riven_async.core.locks import KeyedLock
from riven_async.errors import UpstreamError
from riven_async.services.debrid import (
    Acquired,
    Availability,
    Candidate,
    Debrid,
    DebridError,
    FileWant,
    Infringing,
    NoMatchingFiles,
    NotCached,
    ProbeResult,
    ServiceError,
    normalize_infohash,
)
from riven_async.services.debrid.alldebrid import AllDebrid
from riven_async.services.debrid.file_selection import FileClassifier
from riven_async.services.debrid.realdebrid import RealDebrid
from riven_async.services.debrid.torbox import TorBox

log = logging.getLogger(__name__)

DEFAULT_ORDER: Final = ("torbox", "realdebrid", "alldebrid")
MAX_ATTEMPTS_PER_SERVICE = 5


class Outcome(enum.StrEnum):
    ACQUIRED = "acquired"
    NOT_CACHED = "not_cached"
    INFRINGING = "infringing"
    FAILED = "failed"
    NO_MATCHING_FILES = "no_matching_files"
    SERVICE_ERROR = "service_error"
    OVER_BUDGET = "over_budget"
    SHARED = "shared"


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one service said about one candidate (``service`` is ``*`` for a shared answer)."""

    infohash: str
    service: str
    outcome: Outcome
    reason: str = ""


# What a service said, once asked to add a release, that holds until the retry interval:
# the caller may keep these (``on_answer``) and hand them back (``prior``) so that a
# replayed job, or the next item of a pack, does not add the release there again.
SETTLED_OUTCOMES: Final = frozenset(
    {Outcome.NOT_CACHED, Outcome.INFRINGING, Outcome.FAILED, Outcome.NO_MATCHING_FILES}
)


@dataclass(frozen=True, slots=True)
class PriorCheck:
    """A service's recent settled answer about a hash: the service is not asked again."""

    infohash: str
    service: str
    outcome: Outcome
    reason: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in SETTLED_OUTCOMES:
            raise ValueError(f"{self.outcome} is not a settled answer")
        object.__setattr__(self, "infohash", normalize_infohash(self.infohash))


OnAnswer = Callable[[Attempt], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AcquireResult:
    """The torrent acquired (or None), every attempt, and the services that could not answer.

    ``conclusive`` is false when some service was paused or failed during the call: the
    release may still be available there, so the caller should retry (at ``retry_at``
    when a pause end is known) rather than conclude that nothing is cached.
    """

    acquired: Acquired | None
    attempts: tuple[Attempt, ...]
    unavailable: Mapping[str, str]
    retry_at: datetime | None

    @property
    def conclusive(self) -> bool:
        return self.acquired is not None or not self.unavailable

    def hashes_with(self, outcome: Outcome) -> frozenset[str]:
        """Infohashes that got ``outcome`` from some service (to blacklist, for instance)."""
        return frozenset(a.infohash for a in self.attempts if a.outcome is outcome)


@dataclass(frozen=True, slots=True)
class _Flight:
    """The result of one caller's attempts on a hash, shared with callers who waited for it.

    ``complete`` is false when the attempts were cut short (a service failed, the caller
    was cancelled): then a waiting caller tries for itself.
    """

    acquired: Acquired | None
    complete: bool
    want: FileWant | None = None
    files_rejected: bool = False

    def answers(self, want: FileWant) -> bool:
        """Whether "nothing" from this flight holds for ``want`` too."""
        return self.complete and (self.want == want or not self.files_rejected)


class _Run:
    """One ``acquire`` call's view: services still usable, probes, budgets and attempts."""

    def __init__(
        self,
        services: Sequence[Debrid],
        prior: Iterable[PriorCheck] = (),
        on_answer: OnAnswer | None = None,
    ) -> None:
        self.services = tuple(services)
        self.unavailable: dict[str, str] = {}
        self.pauses: dict[str, datetime] = {}
        self.probes: dict[str, Mapping[str, ProbeResult]] = {}
        self.spent: Counter[str] = Counter()
        self.attempts: list[Attempt] = []
        self.prior = {(p.infohash, p.service): p for p in prior}
        self._on_answer = on_answer

    def active(self) -> list[Debrid]:
        return [s for s in self.services if s.name not in self.unavailable]

    def drop(self, service: Debrid, reason: str) -> None:
        self.unavailable.setdefault(service.name, reason)
        paused = service.paused_until
        if paused is not None:
            self.pauses[service.name] = paused

    def note(self, infohash: str, service: str, outcome: Outcome, reason: str = "") -> None:
        self.attempts.append(Attempt(infohash, service, outcome, reason))

    async def answered(self, infohash: str, service: str, outcome: Outcome, reason: str) -> None:
        """Note a settled answer of a service that was asked, and hand it to ``on_answer``."""
        attempt = Attempt(infohash, service, outcome, reason)
        self.attempts.append(attempt)
        if self._on_answer is not None:
            await self._on_answer(attempt)


def settled_outcome(exc: DebridError) -> Outcome | None:
    """The settled answer an error from ``Debrid.acquire`` stands for (None: the service's
    trouble, not the release's)."""
    if isinstance(exc, ServiceError):
        return None
    if isinstance(exc, NoMatchingFiles):
        return Outcome.NO_MATCHING_FILES
    if isinstance(exc, Infringing):
        return Outcome.INFRINGING
    if isinstance(exc, NotCached):
        return Outcome.NOT_CACHED
    return Outcome.FAILED  # TorrentFailed, TorrentGone and the unforeseen


class _Answer:
    """One service's settled answer about one hash, noted and handed on once: by the
    service before it deletes what it added, or by the chain when it raises."""

    def __init__(self, run: _Run, infohash: str, service: str) -> None:
        self._run = run
        self._infohash = infohash
        self._service = service
        self._given = False

    async def give(self, exc: DebridError) -> None:
        outcome = settled_outcome(exc)
        if outcome is None or self._given:
            return
        self._given = True
        await self._run.answered(self._infohash, self._service, outcome, exc.reason)


class DebridChain:
    """``acquire`` a release through the services in order, as cheaply as each allows.

    Candidates are tried best first, those with a scraper's cached hint (``[RD+]``) ahead
    of the rest. Services with a bulk check (TorBox) are asked once for every candidate
    up front; the others are asked one candidate at a time, at most
    ``max_attempts_per_service`` times per call. For each candidate the services are
    tried in order, so the best release wins and the order breaks ties. A service that is
    paused (capped, rate limited, breaker open) is skipped, and one that fails is dropped
    for the rest of the call. Concurrent calls never check the same hash at once: the
    first caller's answer is shared with those that arrive while it runs, and the keyed
    lock serialises whatever is left, so a torrent is never added twice.
    """

    def __init__(
        self,
        services: Sequence[Debrid],
        *,
        max_attempts_per_service: int = MAX_ATTEMPTS_PER_SERVICE,
        locks: KeyedLock | None = None,
    ) -> None:
        names = [s.name for s in services]
        if len(set(names)) != len(names):
            raise ValueError(f"debrid services must have distinct names, got {names}")
        if max_attempts_per_service < 1:
            raise ValueError("max_attempts_per_service must be >= 1")
        self._services = tuple(services)
        self.max_attempts_per_service = max_attempts_per_service
        self._locks = locks or KeyedLock()
        self._flights: dict[str, asyncio.Future[_Flight]] = {}
        self._classifier = FileClassifier()

    def __repr__(self) -> str:
        return f"<DebridChain {' > '.join(s.name for s in self._services) or 'empty'}>"

    @property
    def services(self) -> tuple[Debrid, ...]:
        return self._services

    async def aclose(self) -> None:
        """Let every service finish its background deletes (before closing the clients)."""
        for service in self._services:
            await service.aclose()

    def paused(self) -> dict[str, datetime | None]:
        """Each service's ``paused_until`` (for the metrics endpoint)."""
        return {s.name: s.paused_until for s in self._services}

    async def acquire(
        self,
        candidates: Sequence[Candidate],
        want: FileWant,
        *,
        prior: Iterable[PriorCheck] = (),
        on_answer: OnAnswer | None = None,
    ) -> AcquireResult:
        """The first candidate some service holds ready with files for ``want``.

        A service with a ``prior`` answer about a candidate is not asked about it again;
        ``on_answer`` is awaited with each settled answer (``SETTLED_OUTCOMES``) a service
        gives, before the service deletes what it added to check and before the next
        service is asked, so the caller can keep it durably: a crash at any point leaves
        the answer or the torrent in the account for the replay to find.
        """
        ordered = order_candidates(candidates)
        run = _Run(self._services, prior, on_answer)
        for service in self._services:
            paused = service.paused_until
            if paused is not None:
                run.drop(service, f"paused until {paused.isoformat()}")
        if ordered:
            await self._bulk_probe(run, [c.infohash for c in ordered])
        acquired: Acquired | None = None
        for candidate in ordered:
            if not run.active():
                break
            acquired = await self._try(candidate, want, run)
            if acquired is not None:
                break
        result = AcquireResult(
            acquired=acquired,
            attempts=tuple(run.attempts),
            unavailable=MappingProxyType(dict(run.unavailable)),
            retry_at=min(run.pauses.values()) if run.pauses else None,
        )
        self._log(result, want, len(ordered))
        return result

    async def _bulk_probe(self, run: _Run, infohashes: Sequence[str]) -> None:
        for service in run.active():
            if not service.bulk_probe:
                continue
            try:
                run.probes[service.name] = await service.probe(infohashes)
            except (ServiceError, UpstreamError) as exc:
                run.drop(service, str(exc))

    async def _try(self, candidate: Candidate, want: FileWant, run: _Run) -> Acquired | None:
        infohash = candidate.infohash
        flight = self._flights.get(infohash)
        if flight is not None:
            shared = await asyncio.shield(flight)
            if shared.acquired is None and shared.answers(want):
                run.note(infohash, "*", Outcome.SHARED, "a concurrent check found nothing")
                return None
            if shared.acquired is not None:
                adapted = await _adapt(shared, candidate, want, self._classifier)
                if adapted is not None:
                    run.note(infohash, adapted.torrent.service, Outcome.SHARED, "reused")
                    return adapted
            async with self._locks(infohash):
                acquired, _ = await self._attempt(candidate, want, run)
                return acquired
        # No await between the lookup above and this registration: callers that arrive
        # from now on wait for this flight instead of checking the hash again.
        mine: asyncio.Future[_Flight] = asyncio.get_running_loop().create_future()
        self._flights[infohash] = mine
        outcome = _Flight(None, False)
        try:
            async with self._locks(infohash):
                acquired, complete = await self._attempt(candidate, want, run)
            files_rejected = any(
                a.infohash == infohash and a.outcome is Outcome.NO_MATCHING_FILES
                for a in run.attempts
            )
            outcome = _Flight(acquired, complete, want, files_rejected)
            return acquired
        finally:
            del self._flights[infohash]
            mine.set_result(outcome)

    async def _attempt(
        self, candidate: Candidate, want: FileWant, run: _Run
    ) -> tuple[Acquired | None, bool]:
        """Ask each usable service in order; whether every one of them answered."""
        infohash = candidate.infohash
        complete = True
        for service in run.active():
            name = service.name
            known = self._known(service, infohash, run)
            if known is Outcome.NO_MATCHING_FILES:
                return None, complete  # the files are the release's, whatever the service
            if known is not None:
                continue
            probe = run.probes.get(name, {}).get(infohash)
            paused = service.paused_until
            if paused is not None:
                run.drop(service, f"paused until {paused.isoformat()}")
                complete = False
                continue
            run.spent[name] += 1
            answer = _Answer(run, infohash, name)
            try:
                acquired = await service.acquire(candidate, want, probe, settled=answer.give)
            except ServiceError as exc:
                run.note(infohash, name, Outcome.SERVICE_ERROR, exc.reason)
                run.drop(service, str(exc))
                complete = False
            except DebridError as exc:
                await answer.give(exc)  # a no-op if the service gave it before cleaning up
                if isinstance(exc, NoMatchingFiles):
                    return None, complete  # the files are the release's, whatever the service
            except UpstreamError as exc:
                run.note(infohash, name, Outcome.SERVICE_ERROR, str(exc))
                run.drop(service, str(exc))
                complete = False
            else:
                run.note(infohash, name, Outcome.ACQUIRED, acquired.torrent.status)
                return acquired, True
        return None, complete

    def _known(self, service: Debrid, infohash: str, run: _Run) -> Outcome | None:
        """The outcome (noted) when ``service`` is not to be asked about the hash, else None."""
        name = service.name
        earlier = run.prior.get((infohash, name))
        if earlier is not None:
            run.note(infohash, name, earlier.outcome, f"asked recently: {earlier.reason}")
            return earlier.outcome
        probe = run.probes.get(name, {}).get(infohash)
        if probe is not None and probe.availability is Availability.NOT_CACHED:
            run.note(infohash, name, Outcome.NOT_CACHED, "bulk check")
            return Outcome.NOT_CACHED
        likely = probe is not None and probe.availability is Availability.CACHED
        if not likely and run.spent[name] >= self.max_attempts_per_service:
            run.note(infohash, name, Outcome.OVER_BUDGET)
            return Outcome.OVER_BUDGET
        return None

    def _log(self, result: AcquireResult, want: FileWant, candidates: int) -> None:
        acquired = result.acquired
        if acquired is not None:
            log.info(
                "acquired %s for %s on %s (%d attempts)",
                acquired.candidate.infohash,
                want.describe(),
                acquired.torrent.service,
                len(result.attempts),
                extra={
                    "action": "debrid_acquire",
                    "service": acquired.torrent.service,
                    "infohash": acquired.candidate.infohash,
                    "attempts": len(result.attempts),
                },
            )
            return
        log.info(
            "no cached release for %s among %d candidates (%d attempts; unavailable: %s)",
            want.describe(),
            candidates,
            len(result.attempts),
            ", ".join(sorted(result.unavailable)) or "none",
            extra={
                "action": "debrid_acquire",
                "attempts": len(result.attempts),
                "unavailable": sorted(result.unavailable),
            },
        )


def order_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Each hash once, in the given (best first) order, those with a cached hint first."""
    merged: dict[str, Candidate] = {}
    for candidate in candidates:
        held = merged.get(candidate.infohash)
        if held is None:
            merged[candidate.infohash] = candidate
        elif candidate.cached_hint and not held.cached_hint:
            merged[candidate.infohash] = Candidate(held.infohash, held.title, True)
    ordered = list(merged.values())
    return [c for c in ordered if c.cached_hint] + [c for c in ordered if not c.cached_hint]


async def _adapt(
    shared: _Flight, candidate: Candidate, want: FileWant, classifier: FileClassifier
) -> Acquired | None:
    """Another caller's torrent, if the files it holds serve this caller's want too."""
    assert shared.acquired is not None
    torrent = shared.acquired.torrent
    if shared.want == want:
        return Acquired(torrent, shared.acquired.selection, candidate, reused=True)
    selection = await classifier.select_async(torrent.selected_files, want)
    if not selection.satisfies(want):
        return None
    return Acquired(torrent, selection, candidate, reused=True)


class ClientSource(Protocol):
    """Where HTTP clients come from by upstream name (``UpstreamClients`` or a dict)."""

    def get(self, name: str, /) -> HttpClient | None: ...


def build_services(
    clients: ClientSource, order: Sequence[str] = DEFAULT_ORDER, *, clock: Clock | None = None
) -> list[Debrid]:
    """One client per name in ``order`` whose upstream is enabled, in that order."""
    services: list[Debrid] = []
    for name in order:
        client = clients.get(name)
        if client is None:
            continue
        if name == "realdebrid":
            services.append(RealDebrid(client, clock=clock))
        elif name == "alldebrid":
            services.append(AllDebrid(client, clock=clock))
        elif name == "torbox":
            services.append(TorBox(client, clock=clock))
        else:
            raise ValueError(f"unknown debrid service {name!r} (known: {', '.join(DEFAULT_ORDER)})")
    return services
