"""Helpers for the sim tests: shape comparison against samples, and small HTTP calls."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from riven_async.sim.releases import Release
from riven_async.sim.server import SimCluster

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def shape_errors(actual: Any, samples: Sequence[Any], path: str = "$") -> list[str]:
    """Where ``actual`` differs in shape from the samples (same keys and value types).

    Several samples (or the elements of a sample list) are merged: a key present in every
    one is required, a key present in some is allowed. ``null`` on either side matches any
    type, since real APIs null most fields somewhere.
    """
    present = [s for s in samples if s is not None]
    if actual is None or not present:
        return []
    kinds = {_kind(s) for s in present}
    kind = _kind(actual)
    if kind not in kinds:
        return [f"{path}: {kind} where the sample has {sorted(kinds)}"]
    if isinstance(actual, dict):
        objects = [s for s in present if isinstance(s, dict)]
        allowed = set().union(*(o.keys() for o in objects))
        required = set.intersection(*(set(o.keys()) for o in objects))
        errors = []
        if required - actual.keys():
            errors.append(f"{path}: missing keys {sorted(required - actual.keys())}")
        if actual.keys() - allowed:
            errors.append(f"{path}: unexpected keys {sorted(actual.keys() - allowed)}")
        for key in sorted(actual.keys() & allowed):
            errors += shape_errors(
                actual[key], [o[key] for o in objects if key in o], f"{path}.{key}"
            )
        return errors
    if isinstance(actual, list):
        elements = [item for s in present if isinstance(s, list) for item in s]
        if not elements:
            return []
        return [
            e for i, item in enumerate(actual) for e in shape_errors(item, elements, f"{path}[{i}]")
        ]
    return []


def xml_tree(text: str) -> dict[str, Any]:
    """An XML document as nested dicts: ``@attr`` strings and one list per child tag."""

    def convert(element: ET.Element) -> dict[str, Any]:
        node: dict[str, Any] = {f"@{k}": v for k, v in element.attrib.items()}
        for child in element:
            node.setdefault(child.tag, []).append(convert(child))
        return node

    root = ET.fromstring(text.encode())
    return {root.tag: [convert(root)]}


def assert_same_shape(actual: Any, *samples: Any) -> None:
    errors = shape_errors(actual, samples)
    assert not errors, "shape differs from the sample:\n" + "\n".join(errors[:20])


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer read in full: status, headers and body (JSON parsed when it is JSON)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: Any
    text: str


async def call(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Reply:
    async with http.request(method, url, allow_redirects=False, **kwargs) as response:
        text = await response.text()
        body: Any = text
        if "json" in response.headers.get("Content-Type", "") and text:
            body = await response.json(content_type=None)
        return Reply(response.status, response.headers, body, text)


async def get(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> Reply:
    return await call(http, "GET", url, **kwargs)


async def post(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> Reply:
    return await call(http, "POST", url, **kwargs)


def pick_release(
    sims: SimCluster, service: str, cached: bool, multi_file: bool | None = None
) -> Release:
    """A published release with seeders that ``service`` has (or has not) cached now."""
    now = sims.clock.now()
    for show in sims.catalog.shows():
        for plan in show.seasons:
            if plan.number == 0:
                continue
            for release in sims.catalog.season_releases(show, plan.number, now):
                if (
                    release.seeders > 0
                    and sims.world.is_cached(service, release.infohash, now) is cached
                    and (multi_file is None or release.multi_file is multi_file)
                ):
                    return release
    raise AssertionError(f"no {'cached' if cached else 'uncached'} release on {service}")
