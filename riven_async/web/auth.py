"""Which paths need the API key, and the places each sender can put it.

Sonarr/Radarr send Basic auth (the key as password, any user) or a custom header; the
Overseerr family one verbatim ``Authorization`` value; Jellyfin custom headers; Plex
nothing but the URL. So the key is accepted as ``X-Api-Key``, ``Authorization: Bearer``,
Basic password, a bare ``Authorization`` value, or ``?apikey=`` / ``?api_key=``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterator, Mapping

OPEN_PATHS = frozenset({"/health"})
METRICS_PATH = "/metrics"
API_KEY_HEADER = "X-Api-Key"
QUERY_KEYS = ("apikey", "api_key")
_MAX_CREDENTIAL_CHARS = 4096


def needs_key(path: str, *, metrics_public: bool) -> bool:
    """Every path needs the key except ``/health`` (and ``/metrics`` when made public).

    Deny by default, so a route added later is never open by accident.
    """
    if path in OPEN_PATHS:
        return False
    return not (metrics_public and path == METRICS_PATH)


def presented(headers: Mapping[str, str], query: Mapping[str, str]) -> Iterator[bytes]:
    """Every credential the request carries, in any accepted place, as bytes."""
    header_key = headers.get(API_KEY_HEADER)
    if header_key:
        yield _bytes(header_key.strip())
    authorization = headers.get("Authorization", "").strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            yield _bytes(value.strip())
        elif scheme.lower() == "basic":
            password = _basic_password(value.strip())
            if password is not None:
                yield password
        else:
            # Overseerr's "Authorization Header" field holding just the key.
            yield _bytes(authorization)
    for name in QUERY_KEYS:
        query_key = query.get(name)
        if query_key:
            yield _bytes(query_key)


def is_authorized(headers: Mapping[str, str], query: Mapping[str, str], api_key: str) -> bool:
    """True when any presented credential equals ``api_key`` (constant-time compare)."""
    if not api_key:
        return False
    expected = _bytes(api_key)
    matched = False
    for candidate in presented(headers, query):
        # Compare every candidate: the time taken does not depend on which one matched.
        matched |= hmac.compare_digest(candidate, expected)
    return matched


def _basic_password(token: str) -> bytes | None:
    if len(token) > _MAX_CREDENTIAL_CHARS:
        return None
    try:
        decoded = base64.b64decode(token.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        return None
    _user, sep, password = decoded.partition(b":")
    return password if sep else None


def _bytes(text: str) -> bytes:
    # Header values can carry surrogate escapes; they must compare, not raise.
    return text[:_MAX_CREDENTIAL_CHARS].encode("utf-8", "surrogatepass")
