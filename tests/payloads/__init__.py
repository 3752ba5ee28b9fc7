"""Real-shaped webhook bodies (built from ../shared/docs/webhooks.md) and a loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
PLEX_SAMPLE_BOUNDARY = "------------------------Q1m9xZ2vTq7HkP0sLd3RwA"
DEFAULT_BOUNDARY = "-" * 24 + "aB3dE5gH7jK9mN1pQ3sT5v"
# The smallest valid JPEG-looking bytes; PMS sends a real poster here.
THUMB = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\r\n\r\n\xff\xd9"


def load(name: str) -> bytes:
    """The raw bytes of ``tests/payloads/<name>``."""
    return (HERE / name).read_bytes()


def load_json(name: str) -> dict[str, Any]:
    """``tests/payloads/<name>`` parsed as a JSON object."""
    data = orjson.loads(load(name))
    assert isinstance(data, dict)
    return data


def names(prefix: str) -> list[str]:
    """Every payload file whose name starts with ``prefix``."""
    return sorted(p.name for p in HERE.iterdir() if p.name.startswith(prefix))


def plex_multipart(
    payload: bytes, *, thumb: bytes | None = THUMB, boundary: str = DEFAULT_BOUNDARY
) -> tuple[bytes, str]:
    """A body as PMS's libcurl builds it: the JSON part, then (optionally) the thumb part."""
    lines = [
        f"--{boundary}".encode(),
        b'Content-Disposition: form-data; name="payload"',
        b"Content-Type: application/json",
        b"",
        payload,
    ]
    if thumb is not None:
        lines += [
            f"--{boundary}".encode(),
            b'Content-Disposition: form-data; name="thumb"; filename="thumb.jpg"',
            b"Content-Type: image/jpeg",
            b"",
            thumb,
        ]
    lines.append(f"--{boundary}--".encode())
    return b"\r\n".join(lines) + b"\r\n", f"multipart/form-data; boundary={boundary}"
