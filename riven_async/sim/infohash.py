"""Infohashes that look random but decode back to the release they name."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum

_PAYLOAD = struct.Struct(">BIHHB")  # scope, title index, season, episode, variant
_SIZE = _PAYLOAD.size  # 10 bytes; the check is 10 more: 20 bytes, 40 hex digits


class Scope(IntEnum):
    """What a release covers."""

    MOVIE = 1
    EPISODE = 2
    SEASON = 3
    SERIES = 4


@dataclass(frozen=True, slots=True)
class ReleaseKey:
    """The coordinates of one release: ``SERIES`` packs store their last season in ``episode``."""

    scope: Scope
    title_index: int
    season: int
    episode: int
    variant: int


class HashCodec:
    """Encodes and decodes one seed's infohashes (the seed is the BLAKE2b key).

    A hash is ``check || (payload XOR mask)``: ``payload`` packs the release's coordinates,
    ``check`` is a keyed BLAKE2b of it and ``mask`` a keyed BLAKE2b of ``check``. Decoding
    verifies ``check``, so a hash this seed never made is recognised as unknown, and a debrid
    sim can resolve any magnet to its files without an index in memory.
    """

    def __init__(self, seed: int) -> None:
        self._key = f"riven-sim:{seed}".encode()[:64]

    def _blake(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=self._key, digest_size=_SIZE).digest()

    def encode(self, key: ReleaseKey) -> str:
        payload = _PAYLOAD.pack(key.scope, key.title_index, key.season, key.episode, key.variant)
        check = self._blake(payload)
        return (check + _xor(payload, self._blake(check))).hex()

    def decode(self, infohash: str) -> ReleaseKey | None:
        """The release an infohash names, or None for a hash this catalog never made."""
        try:
            raw = bytes.fromhex(infohash)
        except ValueError:
            return None
        if len(raw) != 2 * _SIZE:
            return None
        check, masked = raw[:_SIZE], raw[_SIZE:]
        payload = _xor(masked, self._blake(check))
        if self._blake(payload) != check:
            return None
        scope, index, season, episode, variant = _PAYLOAD.unpack(payload)
        try:
            return ReleaseKey(Scope(scope), index, season, episode, variant)
        except ValueError:
            return None

    def uniform(self, *parts: str) -> float:
        """A deterministic number in [0, 1) for ``parts`` (per-hash decisions, no RNG state)."""
        digest = hashlib.blake2b("\x1f".join(parts).encode(), key=self._key, digest_size=8)
        return int.from_bytes(digest.digest(), "big") / 2**64


def _xor(left: bytes, right: bytes) -> bytes:
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(_SIZE, "big")


def is_infohash(text: str) -> bool:
    return len(text) == 40 and all(ch in "0123456789abcdefABCDEF" for ch in text)
