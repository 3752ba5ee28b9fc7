"""The bencode reader: strict on syntax, bounded, and never raising anything but its error."""

from __future__ import annotations

import contextlib
import hashlib
import time

import pytest
from hypothesis import given, settings, strategies as st

from riven_async.services.scrapers import ParseError, bencode
from riven_async.services.scrapers.bencode import BencodeError, BValue
from tests.services.scraper_fixtures import make_torrent, torrent_infohash

values: st.SearchStrategy[BValue] = st.recursive(
    st.integers(min_value=-(10**20), max_value=10**20) | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.binary(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@given(values)
def test_decode_reads_back_what_encode_wrote(value: BValue) -> None:
    assert bencode.decode(bencode.encode(value)) == value


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_decode_of_arbitrary_bytes_raises_only_bencode_error(data: bytes) -> None:
    with contextlib.suppress(BencodeError):
        bencode.decode(data)


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_info_hash_of_arbitrary_bytes_raises_only_bencode_error(data: bytes) -> None:
    with contextlib.suppress(BencodeError):
        bencode.info_hash(data)


@given(values, st.integers(min_value=0, max_value=200), st.binary(min_size=1, max_size=3))
def test_mutated_encodings_raise_only_bencode_error(
    value: BValue, where: int, splice: bytes
) -> None:
    data = bytearray(bencode.encode(value))
    cut = where % (len(data) + 1)
    data[cut:cut] = splice
    for attempt in (bytes(data), bytes(data[:cut])):
        with contextlib.suppress(BencodeError):
            bencode.decode(attempt)
        with contextlib.suppress(BencodeError):
            bencode.info_hash(attempt)


@given(st.text(min_size=1, max_size=60), st.integers(0, 2**40), st.binary(max_size=200))
def test_info_hash_of_valid_torrents_matches_an_independent_hash(
    name: str, length: int, extra: bytes
) -> None:
    torrent = make_torrent(name, length, extra=extra)
    assert bencode.info_hash(torrent) == torrent_infohash(torrent)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"i01e", "non-canonical"),
        (b"i-0e", "non-canonical"),
        (b"ie", "malformed integer"),
        (b"i-e", "malformed integer"),
        (b"i1", "unterminated"),
        (b"i" + b"9" * 40 + b"e", "oversized"),
        (b"01:a", "non-canonical string"),
        (b"3:ab", "past the end"),
        (b"-1:a", "unexpected byte"),
        (b"l", "truncated"),
        (b"le1", "trailing"),
        (b"e", "unexpected end"),
        (b"di1ei2ee", "not a string"),
        (b"d1:ae", "without a value"),
        (b"d1:ai1e1:ai2ee", "duplicate"),
        (b"x", "unexpected byte"),
        (b"9999999999:a", "malformed string length"),
    ],
)
def test_malformed_input_is_rejected(data: bytes, why: str) -> None:
    with pytest.raises(BencodeError, match=why):
        bencode.decode(data)


def test_bencode_error_is_the_scrapers_parse_error() -> None:
    assert issubclass(BencodeError, ParseError)
    assert issubclass(BencodeError, ValueError)


def test_nesting_deeper_than_the_limit_is_rejected() -> None:
    assert bencode.decode(b"l" * 64 + b"e" * 64) is not None
    with pytest.raises(BencodeError, match="deeper"):
        bencode.decode(b"l" * 65 + b"e" * 65)


def test_size_limit_is_checked_before_reading() -> None:
    with pytest.raises(BencodeError, match="limit"):
        bencode.decode(b"0:" * 10, max_bytes=19)
    with pytest.raises(BencodeError, match="limit"):
        bencode.info_hash(b"d" + b"x" * (bencode.MAX_TORRENT_BYTES + 1))


def test_token_limit_bounds_the_work_on_hostile_input() -> None:
    hostile = b"l" + b"i0e" * (bencode.MAX_TOKENS + 10) + b"e"
    began = time.process_time()  # CPU time: other processes on the machine do not count
    with pytest.raises(BencodeError, match="values"):
        bencode.decode(hostile)
    assert time.process_time() - began < 3.0


def test_unsorted_keys_are_read_as_sent() -> None:
    assert bencode.decode(b"d1:bi1e1:ai2ee") == {b"b": 1, b"a": 2}


def test_info_hash_is_sha1_of_the_info_dict_bytes() -> None:
    torrent = make_torrent("Show.S01E01.1080p.mkv")
    assert bencode.info_hash(torrent) == torrent_infohash(torrent)
    start = torrent.index(b"4:info") + len(b"4:info")
    assert bencode.info_hash(torrent) == hashlib.sha1(torrent[start:-1]).hexdigest()


def test_info_hash_keeps_the_info_bytes_as_sent_even_unsorted() -> None:
    info = b"d4:name1:a6:lengthi1e12:piece lengthi16384e6:pieces20:" + b"p" * 20 + b"e"
    torrent = b"d4:info" + info + b"8:announce1:xe"
    assert bencode.info_hash(torrent) == hashlib.sha1(info).hexdigest()


@pytest.mark.parametrize(
    ("torrent", "why"),
    [
        (b"li1ee", "dictionary"),
        (b"d8:announce1:xe", "no info"),
        (b"d4:infoi1ee", "no info"),
        (b"d4:infod4:name1:aee", "v1"),
        (b"d4:infod4:name1:a6:pieces3:abcee", "v1"),
        (b"d4:infod4:name1:a6:pieces20:" + b"p" * 20 + b"ee", "piece length"),
        (b"d4:infod12:piece lengthi1e6:pieces20:" + b"p" * 20 + b"ee", "name"),
        (b"d4:infod4:name1:a12:piece lengthi1e6:pieces20:" + b"p" * 20 + b"ee1:x", "trailing"),
        (b"d4:infode4:infodee", "duplicate"),
        (b"d4:info", "truncated"),
    ],
)
def test_info_hash_rejects_what_is_not_a_v1_torrent(torrent: bytes, why: str) -> None:
    with pytest.raises(BencodeError, match=why):
        bencode.info_hash(torrent)


def test_encode_refuses_what_bencode_cannot_say() -> None:
    with pytest.raises(TypeError):
        bencode.encode(True)
