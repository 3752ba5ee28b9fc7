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
