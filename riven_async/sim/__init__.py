"""Simulated upstreams on loopback (TMDB, TVMaze, scrapers, debrids, media servers); see server."""

from __future__ import annotations
