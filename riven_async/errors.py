"""The exception hierarchy shared by every layer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class RivenError(Exception):
    """Base of every error riven_async raises on purpose."""


class ConfigError(RivenError):
    """A config file is missing, unparsable or invalid; start-up must stop with exit 78."""

    def __init__(self, path: Path | str, reason: str, key: str | None = None) -> None:
        self.path = Path(path)
        self.key = key
        self.reason = reason
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        super().__init__(where + reason)

    @classmethod
    def from_validation(cls, path: Path | str, exc: ValidationError) -> ConfigError:
        """Name the first offending key (``server.port``) and why; count the others."""
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0]
        key = _dotted(first["loc"])
        reason = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            reason = "unknown key (check the spelling; see config.example.toml)"
        if len(errors) > 1:
            others = ", ".join(_dotted(e["loc"]) for e in errors[1:4])
            reason += f" (and {len(errors) - 1} more: {others})"
        return cls(path, reason, key=key or None)


def _dotted(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc)


class DatabaseUnavailable(RivenError):
    """PostgreSQL cannot be reached right now; callers back off and retry."""


class MigrationError(RivenError):
    """A schema migration cannot be applied, or an applied one was changed."""


class PayloadError(RivenError):
    """An inbound request body is malformed; becomes a 4xx naming the field."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


class UpstreamError(RivenError):
    """An upstream HTTP service failed or refused; the message names it and a scrubbed URL.

    ``status`` is the HTTP status (None when no answer came back), ``body`` the response
    body (bounded, never rendered in the message) so services can read error codes.
    """

    def __init__(
        self,
        service: str,
        status: int | None,
        url: str,
        reason: str = "",
        *,
        method: str = "GET",
        retry_after_s: float | None = None,
        body: bytes = b"",
    ) -> None:
        self.service = service
        self.status = status
        self.url = url
        self.method = method
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.body = body[:65_536]
        what = f"HTTP {status}" if status is not None else "no answer"
        message = f"{service}: {what} on {method} {url}"
        if reason:
            message += f": {reason}"
        super().__init__(message)


class RateLimited(UpstreamError):
    """The upstream answered 429; every request to it is paused for ``retry_after_s``."""

    retry_after_s: float

    def __init__(
        self,
        service: str,
        url: str,
        retry_after_s: float,
        *,
        method: str = "GET",
        body: bytes = b"",
    ) -> None:
        super().__init__(
            service,
            429,
            url,
            f"rate limited, retry after {retry_after_s:.1f}s",
            method=method,
            retry_after_s=retry_after_s,
            body=body,
        )


class UpstreamUnavailable(UpstreamError):
    """The upstream cannot be reached: connection failure, timeout, or an open circuit."""


class UpstreamPayloadError(UpstreamError):
    """The upstream answered, but the body cannot be decoded (bad JSON, too large)."""
