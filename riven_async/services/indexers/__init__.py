"""Metadata indexers: TMDB (ids, shows, movies, change feeds) and TVMaze (exact air times)."""

from __future__ import annotations
