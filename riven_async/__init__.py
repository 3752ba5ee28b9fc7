"""riven_async: turn media requests into a ready-to-play library."""

from __future__ import annotations

__version__ = "0.1.0"
