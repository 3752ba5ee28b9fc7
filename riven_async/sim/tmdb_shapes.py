"""TMDB v3 JSON bodies built from the catalog, key for key as the real API returns them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from riven_async.sim import names
from riven_async.sim.movies import Movie
from riven_async.sim.shows import Episode, Show


def image(kind: str, ident: int | str) -> str:
    """A stable fake image path such as ``/ztkUQFLlC19CCMYHW9o1zWhJRNq.jpg``."""
    digest = hashlib.blake2b(f"{kind}:{ident}".encode(), digest_size=16).hexdigest()
    return f"/{digest[:27]}.jpg"


def _language(show: Show) -> str:
    return names.COUNTRY_LANGUAGE.get(show.network.country, "en")


def local_date(show: Show, episode: Episode | None) -> str | None:
    if episode is None or not episode.date_known:
        return None
    return show.local_air(episode).date().isoformat()


def episode_brief(show: Show, episode: Episode | None, now: datetime) -> dict[str, Any] | None:
    """``last_episode_to_air`` / ``next_episode_to_air``."""
    if episode is None:
        return None
    aired = episode.aired(now.timestamp())
    return {
        "id": episode.tmdb_id,
        "name": episode.name,
        "overview": "" if not aired else f"{show.title}: {episode.name}.",
        "vote_average": round(6 + (episode.tmdb_id % 35) / 10, 1) if aired else 0,
        "vote_count": episode.tmdb_id % 300 if aired else 0,
        "air_date": local_date(show, episode),
        "episode_number": episode.number,
        "episode_type": episode.episode_type,
        "production_code": "",
        "runtime": episode.runtime if aired else None,
        "season_number": episode.season,
        "show_id": show.tmdb_id,
        "still_path": image("still", episode.tmdb_id) if aired else None,
    }


def _season_entry(show: Show, number: int, now: datetime) -> dict[str, Any]:
    episodes = show.episodes(number, now)
    return {
        "air_date": local_date(show, episodes[0]) if episodes else None,
        "episode_count": len(episodes),
        "id": 900_000 + show.index * 32 + number,
        "name": "Specials" if number == 0 else f"Season {number}",
        "overview": "",
        "poster_path": image("season", f"{show.index}:{number}"),
        "season_number": number,
        "vote_average": round(6 + (show.index + number) % 30 / 10, 1),
    }


def _network(show: Show) -> dict[str, Any]:
    network = show.network
    return {
        "id": network.tmdb_id,
        "logo_path": image("network", network.tmdb_id),
        "name": network.name,
        "origin_country": network.country,
    }


def _spoken(language: str) -> list[dict[str, Any]]:
    name = names.LANGUAGE_NAMES.get(language, "English")
    return [{"english_name": name, "iso_639_1": language, "name": name}]


def tv_external_ids(show: Show) -> dict[str, Any]:
    return {
        "id": show.tmdb_id,
        "imdb_id": show.imdb_id,
        "freebase_mid": None,
        "freebase_id": None,
        "tvdb_id": show.tvdb_id,
        "tvrage_id": None,
        "wikidata_id": None,
        "facebook_id": None,
        "instagram_id": None,
        "twitter_id": None,
    }


def tv_details(show: Show, now: datetime) -> dict[str, Any]:
    language = _language(show)
    seasons = show.visible_seasons(now)
    listed = show.all_episodes(now)
    last, upcoming = show.last_aired(now), show.next_to_air(now)
    country = show.network.country
    return {
        "adult": False,
        "backdrop_path": image("backdrop", show.tmdb_id),
        "created_by": [
            {
                "id": 100_000 + show.index,
                "credit_id": hashlib.blake2b(str(show.index).encode(), digest_size=12).hexdigest(),
                "name": f"Creator {show.index}",
                "original_name": f"Creator {show.index}",
                "gender": 2 if show.index % 2 else 1,
                "profile_path": image("person", show.index),
            }
        ],
        "episode_run_time": [show.runtime] if show.index % 3 else [],
        "first_air_date": (local_date(show, listed[0]) or "") if listed else "",
        "genres": [{"id": gid, "name": name} for gid, name in show.genres],
        "homepage": f"https://www.example.tv/{names.slug(show.title)}",
        "id": show.tmdb_id,
        "in_production": show.in_production(now),
        "languages": [language],
        "last_air_date": local_date(show, last),
        "last_episode_to_air": episode_brief(show, last, now),
        "name": show.title,
        "next_episode_to_air": episode_brief(show, upcoming, now),
        "networks": [_network(show)],
        "number_of_episodes": len(listed),
        "number_of_seasons": sum(1 for s in seasons if s.number > 0),
        "origin_country": [country],
        "original_language": language,
        "original_name": show.title,
        "overview": f"{show.title} follows the people of the {show.title.split()[-1].lower()}.",
        "popularity": show.popularity,
        "poster_path": image("poster", show.tmdb_id),
        "production_companies": [
            {
                "id": 20_000 + show.index % 500,
                "logo_path": image("company", show.index % 500),
                "name": f"{show.title.split()[-1]} Studios",
                "origin_country": country,
            }
        ],
        "production_countries": [{"iso_3166_1": country, "name": show.network.country_name}],
        "seasons": [_season_entry(show, s.number, now) for s in seasons],
        "spoken_languages": _spoken(language),
        "status": show.status(now),
        "tagline": "",
        "type": "Scripted",
        "vote_average": show.vote_average,
        "vote_count": show.vote_count,
    }


def _crew(show: Show, episode: Episode) -> list[dict[str, Any]]:
    if episode.number != 1:
        return []
    name = f"Director {show.index}"
    return [
        {
            "job": "Director",
            "department": "Directing",
            "credit_id": hashlib.blake2b(f"{episode.tmdb_id}".encode(), digest_size=12).hexdigest(),
            "adult": False,
            "gender": 1,
            "id": 200_000 + show.index,
            "known_for_department": "Directing",
            "name": name,
            "original_name": name,
            "popularity": 1.5,
            "profile_path": None,
        }
    ]


def season_details(show: Show, number: int, now: datetime) -> dict[str, Any]:
    entry = _season_entry(show, number, now)
    episodes = []
    for episode in show.episodes(number, now):
        brief = episode_brief(show, episode, now)
        assert brief is not None
        episodes.append(
            {
                "air_date": brief["air_date"],
                "episode_number": episode.number,
                "episode_type": episode.episode_type,
                "id": episode.tmdb_id,
                "name": episode.name,
                "overview": brief["overview"],
                "production_code": "",
                "runtime": brief["runtime"],
                "season_number": episode.season,
                "show_id": show.tmdb_id,
                "still_path": brief["still_path"],
                "vote_average": brief["vote_average"],
                "vote_count": brief["vote_count"],
                "crew": _crew(show, episode),
                "guest_stars": [],
            }
        )
    return {
        "_id": hashlib.blake2b(f"{show.index}:{number}".encode(), digest_size=12).hexdigest(),
        "air_date": entry["air_date"],
        "episodes": episodes,
        "name": entry["name"],
        "networks": [_network(show)],
        "overview": "",
        "id": entry["id"],
        "poster_path": entry["poster_path"],
        "season_number": number,
        "vote_average": entry["vote_average"],
    }


def _day(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


def movie_external_ids(movie: Movie) -> dict[str, Any]:
    return {
        "id": movie.tmdb_id,
        "imdb_id": movie.imdb_id,
        "wikidata_id": None,
        "facebook_id": None,
        "instagram_id": None,
        "twitter_id": None,
    }


def movie_release_dates(movie: Movie) -> dict[str, Any]:
    us = [
        {
            "certification": movie.certification,
            "descriptors": [],
            "iso_639_1": "",
            "note": note,
            "release_date": datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "type": kind,
        }
        for kind, epoch, note in movie.release_dates()
    ]
    gb = dict(us[1], certification="12A" if movie.certification.startswith("PG") else "15")
    return {
        "results": [
            {"iso_3166_1": "US", "release_dates": us},
            {"iso_3166_1": "GB", "release_dates": [gb]},
        ]
    }


def movie_details(movie: Movie, now: datetime) -> dict[str, Any]:
    collection = None
    if movie.collection is not None:
        collection = {
            "id": movie.collection[0],
            "name": movie.collection[1],
            "poster_path": image("collection-poster", movie.collection[0]),
            "backdrop_path": image("collection-backdrop", movie.collection[0]),
        }
    return {
        "adult": False,
        "backdrop_path": image("backdrop", movie.tmdb_id),
        "belongs_to_collection": collection,
        "budget": movie.budget,
        "genres": [{"id": gid, "name": name} for gid, name in movie.genres],
        "homepage": f"https://www.example.com/movies/{names.slug(movie.title)}",
        "id": movie.tmdb_id,
        "imdb_id": movie.imdb_id,
        "origin_country": ["US"],
        "original_language": "en",
        "original_title": movie.title,
        "overview": f"{movie.title} ({movie.year}).",
        "popularity": movie.popularity,
        "poster_path": image("poster", movie.tmdb_id),
        "production_companies": [
            {
                "id": 30_000 + movie.index % 400,
                "logo_path": image("company", 30_000 + movie.index % 400),
                "name": f"{movie.title.split()[-1]} Pictures",
                "origin_country": "US",
            }
        ],
        "production_countries": [{"iso_3166_1": "US", "name": "United States of America"}],
        "release_date": _day(movie.theatrical_s),
        "revenue": movie.revenue if now.timestamp() >= movie.theatrical_s else 0,
        "runtime": movie.runtime,
        "spoken_languages": _spoken("en"),
        "status": movie.status(now),
        "tagline": "",
        "title": movie.title,
        "video": False,
        "vote_average": movie.vote_average if now.timestamp() >= movie.theatrical_s else 0,
        "vote_count": movie.vote_count if now.timestamp() >= movie.theatrical_s else 0,
    }


def tv_list_item(show: Show, now: datetime, media_type: bool) -> dict[str, Any]:
    """A show in ``/find`` (with ``media_type``) and ``/search/tv`` results."""
    listed = show.all_episodes(now)
    item: dict[str, Any] = {
        "backdrop_path": image("backdrop", show.tmdb_id),
        "id": show.tmdb_id,
        "name": show.title,
        "original_name": show.title,
        "overview": f"{show.title} follows the people of the {show.title.split()[-1].lower()}.",
        "poster_path": image("poster", show.tmdb_id),
        "media_type": "tv",
        "adult": False,
        "original_language": _language(show),
        "genre_ids": [gid for gid, _ in show.genres],
        "popularity": show.popularity,
        "first_air_date": (local_date(show, listed[0]) or "") if listed else "",
        "vote_average": show.vote_average,
        "vote_count": show.vote_count,
        "origin_country": [show.network.country],
    }
    if not media_type:
        del item["media_type"]
    return item


def movie_list_item(movie: Movie, media_type: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "backdrop_path": image("backdrop", movie.tmdb_id),
        "id": movie.tmdb_id,
        "title": movie.title,
        "original_title": movie.title,
        "overview": f"{movie.title} ({movie.year}).",
        "poster_path": image("poster", movie.tmdb_id),
        "media_type": "movie",
        "adult": False,
        "original_language": "en",
        "genre_ids": [gid for gid, _ in movie.genres],
        "popularity": movie.popularity,
        "release_date": _day(movie.theatrical_s),
        "video": False,
        "vote_average": movie.vote_average,
        "vote_count": movie.vote_count,
    }
    if not media_type:
        del item["media_type"]
    return item
