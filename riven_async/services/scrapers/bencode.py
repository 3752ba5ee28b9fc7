"""A strict, bounded bencode reader and the v1 infohash of a ``.torrent`` file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TypeAlias

from riven_async.services.scrapers import ParseError

MAX_TORRENT_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64
# Half a second of pure-Python work at worst (run it off the loop); a torrent of
# 20,000 files stays well below.
MAX_TOKENS = 250_000
MAX_INT_DIGITS = 32
MAX_LENGTH_DIGITS = 9  # under 1 GB per string; the size cap is lower still

BValue: TypeAlias = int | bytes | list["BValue"] | dict[bytes, "BValue"]
Buffer: TypeAlias = bytes | bytearray | memoryview


class BencodeError(ParseError):
    """Bytes that are not one well-formed bencoded value within the limits."""


@dataclass(slots=True)
class _Frame:
    items: list[BValue] | dict[bytes, BValue]
    key: bytes | None = None
    keys: set[bytes] = field(default_factory=set)


class _Reader:
    """Iterative (no recursion): depth, token count and input size are all capped."""

    __slots__ = ("_data", "_max_depth", "_max_tokens", "_tokens")

    def __init__(self, data: bytes, max_depth: int, max_tokens: int) -> None:
        self._data = data
        self._max_depth = max_depth
        self._max_tokens = max_tokens
        self._tokens = 0

    def value(self, pos: int) -> tuple[BValue, int]:
        """The value starting at ``pos`` and the offset just past it."""
        data = self._data
        end = len(data)
        stack: list[_Frame] = []
        while True:
            if pos >= end:
                raise BencodeError(f"truncated at byte {pos}")
            self._tokens += 1
            if self._tokens > self._max_tokens:
                raise BencodeError(f"more than {self._max_tokens} values")
            byte = data[pos]
            expects_key = bool(stack) and isinstance(stack[-1].items, dict)
            expects_key = expects_key and stack[-1].key is None
            if expects_key and not (0x30 <= byte <= 0x39 or byte == 0x65):
                raise BencodeError(f"dictionary key at byte {pos} is not a string")
            value: BValue
            if byte == 0x69:  # i
                value, pos = self._int(pos)
            elif 0x30 <= byte <= 0x39:
                value, pos = self._bytes(pos)
            elif byte in (0x6C, 0x64):  # l, d
                if len(stack) >= self._max_depth:
                    raise BencodeError(f"nested deeper than {self._max_depth}")
                stack.append(_Frame([] if byte == 0x6C else {}))
                pos += 1
                continue
            elif byte == 0x65:  # e
                if not stack:
                    raise BencodeError(f"unexpected end marker at byte {pos}")
                frame = stack.pop()
                if frame.key is not None:
                    raise BencodeError(f"dictionary key without a value before byte {pos}")
                value = frame.items
                pos += 1
            else:
                raise BencodeError(f"unexpected byte 0x{byte:02x} at byte {pos}")
            if not stack:
                return value, pos
            _deliver(stack[-1], value, pos)

    def _int(self, pos: int) -> tuple[int, int]:
        data = self._data
        stop = data.find(b"e", pos + 1, pos + MAX_INT_DIGITS + 3)
        if stop < 0:
            raise BencodeError(f"unterminated or oversized integer at byte {pos}")
        digits = data[pos + 1 : stop]
        negative = digits[:1] == b"-"
        body = digits[1:] if negative else digits
        if not body or not body.isdigit() or not body.isascii():
            raise BencodeError(f"malformed integer at byte {pos}")
        if (body[:1] == b"0" and len(body) > 1) or (negative and body == b"0"):
            raise BencodeError(f"non-canonical integer at byte {pos}")
        number = int(body)
        return (-number if negative else number), stop + 1

    def _bytes(self, pos: int) -> tuple[bytes, int]:
        data = self._data
        colon = data.find(b":", pos, pos + MAX_LENGTH_DIGITS + 1)
        if colon < 0:
            raise BencodeError(f"malformed string length at byte {pos}")
        digits = data[pos:colon]
        if not digits.isdigit() or not digits.isascii():
            raise BencodeError(f"malformed string length at byte {pos}")
        if digits[:1] == b"0" and len(digits) > 1:
            raise BencodeError(f"non-canonical string length at byte {pos}")
        start = colon + 1
        stop = start + int(digits)
        if stop > len(data):
            raise BencodeError(f"string at byte {pos} runs past the end")
        return data[start:stop], stop


def _deliver(frame: _Frame, value: BValue, pos: int) -> None:
    items = frame.items
    if isinstance(items, list):
        items.append(value)
        return
    if frame.key is None:
        assert isinstance(value, bytes)  # checked before the key was read
        if value in frame.keys:
            raise BencodeError(f"duplicate dictionary key before byte {pos}")
        frame.keys.add(value)
        frame.key = value
        return
    items[frame.key] = value
    frame.key = None


def _check_size(data: Buffer, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise BencodeError(f"{len(data)} bytes is over the {max_bytes}-byte limit")
    if not data:
        raise BencodeError("empty input")


def decode(
    data: Buffer,
    *,
    max_bytes: int = MAX_TORRENT_BYTES,
    max_depth: int = MAX_DEPTH,
    max_tokens: int = MAX_TOKENS,
) -> BValue:
    """Exactly one bencoded value filling ``data``; ``BencodeError`` for anything else.

    Strict on syntax (no leading zeros, no ``-0``, string keys, no duplicate keys, nothing
    after the value). Key order is not enforced: clients hash a torrent's ``info`` bytes as
    they are, so a file with unsorted keys still names a real torrent.
    """
    _check_size(data, max_bytes)
    raw = bytes(data)
    value, end = _Reader(raw, max_depth, max_tokens).value(0)
    if end != len(raw):
        raise BencodeError(f"{len(raw) - end} trailing bytes after the value")
    return value


def info_hash(
    torrent: Buffer,
    *,
    max_bytes: int = MAX_TORRENT_BYTES,
    max_depth: int = MAX_DEPTH,
    max_tokens: int = MAX_TOKENS,
) -> str:
    """The v1 infohash (SHA-1 of the bencoded ``info`` dict, as sent) in lower-case hex."""
    _check_size(torrent, max_bytes)
    raw = bytes(torrent)
    reader = _Reader(raw, max_depth, max_tokens)
    if raw[:1] != b"d":
        raise BencodeError("a torrent file is a bencoded dictionary")
    pos, end = 1, len(raw)
    keys: set[bytes] = set()
    span: tuple[int, int] | None = None
    info: BValue | None = None
    while True:
        if pos >= end:
            raise BencodeError(f"truncated at byte {pos}")
        if raw[pos] == 0x65:  # e
            pos += 1
            break
        if not 0x30 <= raw[pos] <= 0x39:
            raise BencodeError(f"dictionary key at byte {pos} is not a string")
        key, pos = reader._bytes(pos)
        if key in keys:
            raise BencodeError(f"duplicate key {key[:32]!r}")
        keys.add(key)
        start = pos
        value, pos = reader.value(pos)
        if key == b"info":
            span, info = (start, pos), value
    if pos != end:
        raise BencodeError(f"{end - pos} trailing bytes after the torrent")
    if span is None or not isinstance(info, dict):
        raise BencodeError("no info dictionary")
    pieces, piece_length = info.get(b"pieces"), info.get(b"piece length")
    if not isinstance(pieces, bytes) or len(pieces) % 20 or not pieces:
        raise BencodeError("not a v1 torrent: info.pieces missing or not SHA-1 sized")
    if not isinstance(piece_length, int) or piece_length <= 0:
        raise BencodeError("info.piece length missing or not positive")
    if not isinstance(info.get(b"name"), bytes):
        raise BencodeError("info.name missing")
    return hashlib.sha1(raw[span[0] : span[1]]).hexdigest()


class _End:
    """Marks where a list or dictionary closes while encoding."""


_END = _End()


def encode(value: BValue) -> bytes:
    """Bencode ``value`` with sorted keys (tests and fixtures build torrents with it)."""
    out: list[bytes] = []
    stack: list[BValue | _End] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _End):
            out.append(b"e")
        elif isinstance(item, bool):
            raise TypeError("bencode has no booleans")
        elif isinstance(item, int):
            out.append(b"i%de" % item)
        elif isinstance(item, bytes):
            out.append(b"%d:%s" % (len(item), item))
        elif isinstance(item, list):
            out.append(b"l")
            stack.append(_END)
            stack.extend(reversed(item))
        else:
            out.append(b"d")
            stack.append(_END)
            for key in sorted(item, reverse=True):
                stack.append(item[key])
                stack.append(key)
    return b"".join(out)
