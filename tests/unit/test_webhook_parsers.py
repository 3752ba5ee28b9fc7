"""The webhook parsers on real-shaped bodies: every sender's events, quirks and bad input."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from riven_async.domain.intents import (
    EpisodeNumber,
    ExternalIds,
    Ignored,
    Intent,
    RecheckMovie,
    RecheckShow,
    RemoveMedia,
    RequestMedia,
    ServerRef,
    TestEvent,
    any_actionable,
    delivery_key,
    intent_from_dict,
    intent_to_dict,
    is_actionable,
)
from riven_async.errors import PayloadError
from riven_async.web.webhooks import (
    Parsed,
    ParseOptions,
    dotted,
    load_json,
    split_title_year,
)
from riven_async.web.webhooks.jellyfin import decode_jellyfin, parse_jellyfin
from riven_async.web.webhooks.overseerr import decode_overseerr, parse_overseerr
from riven_async.web.webhooks.plex import decode_plex, guid_ids, parse_plex, payload_json
from riven_async.web.webhooks.radarr import decode_radarr, parse_radarr
from riven_async.web.webhooks.show_update import (
    MAX_BATCH,
    parse_show_update,
    parse_show_update_batch,
)
from riven_async.web.webhooks.sonarr import decode_sonarr, parse_sonarr
from tests.payloads import PLEX_SAMPLE_BOUNDARY, load, load_json as load_payload, plex_multipart

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
OFF = ParseOptions()
DELETES = ParseOptions(follow_deletes=True)
PENDING = ParseOptions(accept_pending=True)
Parser = Callable[[bytes, str, ParseOptions], list[Intent]]
Decoder = Callable[[bytes, str, ParseOptions], Parsed]
Mutation = Callable[[dict[str, Any]], object]
SEVERANCE = ExternalIds(tmdb=95396, tvdb=371980, imdb="tt11280740", tvmaze=44933)
DUNE = ExternalIds(tmdb=693134, imdb="tt15239678")


def one(intents: list[Intent]) -> Intent:
    assert len(intents) == 1, intents
    return intents[0]


def dumps(data: Any) -> bytes:
    return orjson.dumps(data)


def rejects(parse: Parser, body: bytes, *, field: str | None, status: int = 422,
            content_type: str = JSON, options: ParseOptions = OFF) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        parse(body, content_type, options)
    assert info.value.status == status, info.value
    assert info.value.field == field, info.value
    return info.value


# --- Sonarr -------------------------------------------------------------------------------


def test_sonarr_series_add_requests_the_show_with_all_its_ids() -> None:
    assert one(parse_sonarr(load("sonarr_series_add.json"), JSON, OFF)) == RequestMedia(
        kind="show", ids=SEVERANCE, title="Severance", year=2022, seasons=None, source="sonarr"
    )


@pytest.mark.parametrize(("name", "reason", "episodes"), [
    ("sonarr_grab.json", "sonarr Grab", ((2, 1),)),
    ("sonarr_download.json", "sonarr Download", ((2, 1),)),
    ("sonarr_download_import_complete.json", "sonarr Download (import complete)",
     ((2, 1), (2, 2), (2, 3))),
    ("sonarr_episode_file_delete.json", "sonarr EpisodeFileDelete", ((2, 1),)),
])
def test_sonarr_grab_download_and_file_delete_recheck_the_show(
    name: str, reason: str, episodes: tuple[tuple[int, int], ...]
) -> None:
    assert one(parse_sonarr(load(name), JSON, OFF)) == RecheckShow(
        ids=SEVERANCE, title="Severance", reason=reason, source="sonarr", year=2022,
        seasons=(2,), episodes=tuple(EpisodeNumber(s, e) for s, e in episodes),
    )


def test_sonarr_download_shapes_are_both_understood() -> None:
    per_file = load_payload("sonarr_download.json")
    complete = load_payload("sonarr_download_import_complete.json")
    assert "episodeFile" in per_file
    assert "episodeFiles" not in per_file
    assert "episodeFiles" in complete
    assert "episodeFile" not in complete
    for body in (per_file, complete):
        assert isinstance(one(parse_sonarr(dumps(body), JSON, OFF)), RecheckShow)


def test_sonarr_series_delete_removes_only_when_following_deletes() -> None:
    body = load("sonarr_series_delete.json")
    assert isinstance(one(parse_sonarr(body, JSON, OFF)), Ignored)
    assert one(parse_sonarr(body, JSON, DELETES)) == RemoveMedia(
        kind="show", ids=SEVERANCE, title="Severance", source="sonarr", reason="deleted in sonarr"
    )


def test_sonarr_test_event_and_other_events() -> None:
    assert one(parse_sonarr(load("sonarr_test.json"), JSON, OFF)) == TestEvent("sonarr")
    for name in ("sonarr_health.json", "sonarr_rename.json"):
        assert isinstance(one(parse_sonarr(load(name), JSON, OFF)), Ignored)
    unknown = {**load_payload("sonarr_grab.json"), "eventType": "SomethingNew"}
    assert one(parse_sonarr(dumps(unknown), JSON, OFF)) == Ignored(
        "sonarr SomethingNew: nothing to do"
    )


def test_sonarr_unknown_ids_become_none_and_zero_tvdb_alone_is_rejected() -> None:
    body = load_payload("sonarr_series_add.json")
    body["series"] |= {"tmdbId": 0, "tvMazeId": 0}
    del body["series"]["imdbId"]
    intent = one(parse_sonarr(dumps(body), JSON, OFF))
    assert isinstance(intent, RequestMedia)
    assert intent.ids == ExternalIds(tvdb=371980)
    body["series"]["tvdbId"] = 0
    rejects(parse_sonarr, dumps(body), field="series.tvdbId")


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d["series"].pop("tvdbId"), "series.tvdbId"),
    (lambda d: d["series"].update(tvdbId="three"), "series.tvdbId"),
    (lambda d: d["series"].update(tvdbId=[371980]), "series.tvdbId"),
    (lambda d: d["series"].update(tvdbId=True), "series.tvdbId"),
    (lambda d: d["series"].update(tvdbId=-4), "series.tvdbId"),
    (lambda d: d["series"].update(tvdbId=2**40), "series.tvdbId"),
    (lambda d: d["series"].update(imdbId="nm0000001"), "series.imdbId"),
    (lambda d: d["series"].update(title=12), "series.title"),
    (lambda d: d.pop("series"), "series"),
    (lambda d: d["episodes"][0].update(seasonNumber="two"), "episodes[0].seasonNumber"),
    (lambda d: d.update(episodes={"seasonNumber": 1}), "episodes"),
    (lambda d: d.pop("eventType"), "eventType"),
    (lambda d: d.update(eventType=7), "eventType"),
])
def test_sonarr_bad_fields_are_named(mutate: Mutation, field: str) -> None:
    body = load_payload("sonarr_grab.json")
    mutate(body)
    error = rejects(parse_sonarr, dumps(body), field=field)
    assert field in error.message


def test_sonarr_ignores_unknown_fields_and_string_numbers() -> None:
    body = load_payload("sonarr_grab.json")
    body["brandNewField"] = {"nested": [1, 2]}
    body["series"]["tvdbId"] = "371980"
    intent = one(parse_sonarr(dumps(body), JSON, OFF))
    assert isinstance(intent, RecheckShow)
    assert intent.ids.tvdb == 371980


def test_fields_we_do_not_use_may_be_anything() -> None:
    sonarr = load_payload("sonarr_download.json") | {"episodeFile": "odd", "isUpgrade": "yes"}
    assert isinstance(one(parse_sonarr(dumps(sonarr), JSON, OFF)), RecheckShow)
    radarr = load_payload("radarr_download.json") | {"movieFile": 5, "release": None}
    assert isinstance(one(parse_radarr(dumps(radarr), JSON, OFF)), RecheckMovie)
    seerr = load_payload("overseerr_media_auto_approved_tv.json")
    seerr["media"]["status"] = 5
    seerr["extra"].append({"name": 5, "value": None})
    seerr["issue"] = "whatever"
    intent = one(parse_overseerr(dumps(seerr), JSON, OFF))
    assert isinstance(intent, RequestMedia)
    assert intent.seasons == (1, 2)


# --- Radarr -------------------------------------------------------------------------------


def test_radarr_movie_added_requests_the_movie() -> None:
    assert one(parse_radarr(load("radarr_movie_added.json"), JSON, OFF)) == RequestMedia(
        kind="movie", ids=DUNE, title="Dune: Part Two", year=2024, seasons=None, source="radarr"
    )


@pytest.mark.parametrize("name", ["radarr_grab.json", "radarr_download.json"])
def test_radarr_grab_and_download_recheck_the_movie(name: str) -> None:
    event = load_payload(name)["eventType"]
    assert one(parse_radarr(load(name), JSON, OFF)) == RecheckMovie(
        ids=DUNE, title="Dune: Part Two", year=2024, reason=f"radarr {event}", source="radarr"
    )


def test_radarr_movie_delete_follows_the_option_and_others_are_ignored() -> None:
    body = load("radarr_movie_delete.json")
    assert isinstance(one(parse_radarr(body, JSON, OFF)), Ignored)
    assert one(parse_radarr(body, JSON, DELETES)) == RemoveMedia(
        kind="movie", ids=DUNE, title="Dune: Part Two", source="radarr", reason="deleted in radarr"
    )
    assert one(parse_radarr(load("radarr_test.json"), JSON, OFF)) == TestEvent("radarr")
    assert isinstance(one(parse_radarr(load("radarr_movie_file_delete.json"), JSON, OFF)), Ignored)


def test_radarr_naming_is_not_sonarrs() -> None:
    # Radarr says MovieAdded; a "SeriesAdd" sent to Radarr's route is just an unknown event.
    body = {**load_payload("radarr_movie_added.json"), "eventType": "SeriesAdd"}
    assert isinstance(one(parse_radarr(dumps(body), JSON, OFF)), Ignored)
    body = {**load_payload("sonarr_series_add.json"), "eventType": "MovieAdded"}
    assert isinstance(one(parse_sonarr(dumps(body), JSON, OFF)), Ignored)


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d["movie"].pop("tmdbId"), "movie.tmdbId"),
    (lambda d: d["movie"].update(tmdbId="x"), "movie.tmdbId"),
    (lambda d: d["movie"].update(tmdbId=0, imdbId=""), "movie.tmdbId"),
    (lambda d: d["movie"].update(year="MMXXIV"), "movie.year"),
    (lambda d: d.update(movie=None), "movie"),
])
def test_radarr_bad_fields_are_named(mutate: Mutation, field: str) -> None:
    body = load_payload("radarr_movie_added.json")
    mutate(body)
    rejects(parse_radarr, dumps(body), field=field)


# --- Overseerr / Jellyseerr ---------------------------------------------------------------


def test_overseerr_auto_approved_tv_requests_the_requested_seasons() -> None:
    body = load("overseerr_media_auto_approved_tv.json")
    assert one(parse_overseerr(body, JSON, OFF)) == RequestMedia(
        kind="show", ids=ExternalIds(tmdb=95396, tvdb=371980), title="Severance", year=2022,
        seasons=(1, 2), source="overseerr", requester="alice", source_ref="42",
    )


def test_overseerr_approved_movie_ignores_the_empty_tvdb_id() -> None:
    body = load("overseerr_media_approved_movie.json")
    assert one(parse_overseerr(body, JSON, OFF)) == RequestMedia(
        kind="movie", ids=ExternalIds(tmdb=693134), title="Dune: Part Two", year=2024,
        seasons=None, source="overseerr", requester="bob", source_ref="43",
    )


def test_jellyseerr_tv_without_a_tvdb_id_requests_by_tmdb() -> None:
    intent = one(parse_overseerr(load("jellyseerr_media_approved_tv.json"), JSON, OFF))
    assert isinstance(intent, RequestMedia)
    assert intent.ids == ExternalIds(tmdb=126308)
    assert (intent.title, intent.year, intent.seasons) == ("Shōgun", 2024, (1,))


def test_overseerr_pending_needs_accept_pending() -> None:
    body = load("overseerr_media_pending_tv.json")
    assert isinstance(one(parse_overseerr(body, JSON, OFF)), Ignored)
    intent = one(parse_overseerr(body, JSON, PENDING))
    assert isinstance(intent, RequestMedia)
    assert intent.seasons == (3,)


@pytest.mark.parametrize("name", [
    "overseerr_media_declined_movie.json",
    "overseerr_media_available_tv.json",
    "overseerr_media_failed_movie.json",
    "overseerr_issue_created.json",
])
def test_overseerr_declined_available_failed_and_issues_are_ignored(name: str) -> None:
    # Riven treats these as adds because it never looks at notification_type; we do.
    for options in (OFF, DELETES, PENDING):
        assert isinstance(one(parse_overseerr(load(name), JSON, options)), Ignored)


def test_overseerr_test_notifications() -> None:
    assert one(parse_overseerr(load("overseerr_test_notification.json"), JSON, OFF)) == (
        TestEvent("overseerr")
    )
    # Riven's shortcut: the subject alone makes it a test, whatever else is (not) there.
    assert one(parse_overseerr(b'{"subject":"Test Notification"}', JSON, OFF)) == (
        TestEvent("overseerr")
    )


def test_overseerr_accepts_numeric_ids_too() -> None:
    body = load_payload("overseerr_media_approved_movie.json")
    body["media"]["tmdbId"] = 693134
    intent = one(parse_overseerr(dumps(body), JSON, OFF))
    assert isinstance(intent, RequestMedia)
    assert intent.ids.tmdb == 693134


def test_overseerr_music_and_unknown_types_are_ignored() -> None:
    body = load_payload("overseerr_media_approved_movie.json")
    body["media"]["media_type"] = "music"
    assert isinstance(one(parse_overseerr(dumps(body), JSON, OFF)), Ignored)
    body = {**load_payload("overseerr_media_approved_movie.json"), "notification_type": "NEW_THING"}
    assert isinstance(one(parse_overseerr(dumps(body), JSON, OFF)), Ignored)


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d.pop("notification_type"), "notification_type"),
    (lambda d: d.update(media=None), "media"),
    (lambda d: d.pop("media"), "media"),
    (lambda d: d["media"].update(media_type="book"), "media.media_type"),
    (lambda d: d["media"].update(tmdbId=""), "media.tmdbId"),
    (lambda d: d["media"].update(tmdbId="69x3134"), "media.tmdbId"),
    (lambda d: d.update(extra="1, 2"), "extra"),
])
def test_overseerr_bad_movie_fields_are_named(mutate: Mutation, field: str) -> None:
    body = load_payload("overseerr_media_approved_movie.json")
    mutate(body)
    rejects(parse_overseerr, dumps(body), field=field)


def test_overseerr_tv_needs_an_id_and_readable_seasons() -> None:
    body = load_payload("overseerr_media_auto_approved_tv.json")
    body["media"] |= {"tvdbId": "", "tmdbId": ""}
    rejects(parse_overseerr, dumps(body), field="media.tvdbId")
    body = load_payload("overseerr_media_auto_approved_tv.json")
    body["extra"] = [{"name": "Requested Seasons", "value": "1, two"}]
    rejects(parse_overseerr, dumps(body), field="extra.Requested Seasons")
    body["extra"] = [{"name": "Requested Seasons", "value": ""}]
    intent = one(parse_overseerr(dumps(body), JSON, OFF))
    assert isinstance(intent, RequestMedia)
    assert intent.seasons is None


# --- Plex ---------------------------------------------------------------------------------

BLUEY_EPISODE = RecheckShow(
    ids=ExternalIds(), title="Bluey", reason="plex library.new episode", source="plex",
    year=2018, seasons=(2,), episodes=(EpisodeNumber(2, 50),),
    server_ref=ServerRef("plex", "55319", "4d3a2f1e0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a59"),
)


def test_plex_sample_multipart_with_thumb() -> None:
    body = load("plex_library_new_episode.multipart")
    content_type = f"multipart/form-data; boundary={PLEX_SAMPLE_BOUNDARY}"
    parsed = decode_plex(body, content_type, OFF)
    assert parsed.intents == (BLUEY_EPISODE,)
    # The canonical payload is the JSON part only: the thumb and the boundary do not count.
    assert orjson.loads(parsed.payload) == load_payload("plex_library_new_episode.json")


@pytest.mark.parametrize("thumb", [None, b"\xff\xd8" + bytes(range(256)) * 4 + b"\xff\xd9"])
def test_plex_multipart_with_and_without_thumb_gives_the_same_delivery(thumb: bytes | None) -> None:
    payload = load("plex_library_new_episode.json")
    body, content_type = plex_multipart(payload, thumb=thumb)
    reference = decode_plex(load("plex_library_new_episode.multipart"),
                            f"multipart/form-data; boundary={PLEX_SAMPLE_BOUNDARY}", OFF)
    parsed = decode_plex(body, content_type, OFF)
    assert parsed == reference
    assert delivery_key("plex", parsed.payload) == delivery_key("plex", reference.payload)


def test_plex_episode_guids_are_not_taken_for_the_shows() -> None:
    intent = one(parse_plex(load("plex_library_new_episode.json"), JSON, OFF))
    assert intent == BLUEY_EPISODE  # Guid[] holds imdb://tt13429908, the episode's id


def test_plex_season_is_identified_by_its_parent() -> None:
    intent = one(parse_plex(load("plex_library_new_season.json"), JSON, OFF))
    assert intent == RecheckShow(
        ids=ExternalIds(), title="Bluey", reason="plex library.new season", source="plex",
        year=2018, seasons=(2,),
        server_ref=ServerRef("plex", "55319", "4d3a2f1e0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a59"),
    )


def test_plex_show_uses_its_guids() -> None:
    intent = one(parse_plex(load("plex_library_new_show.json"), JSON, OFF))
    assert isinstance(intent, RecheckShow)
    assert intent.ids == ExternalIds(tmdb=82728, tvdb=353546, imdb="tt7678620")
    assert intent.server_ref == ServerRef(
        "plex", "55319", "4d3a2f1e0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a59"
    )


def test_plex_legacy_agent_guid_names_the_show() -> None:
    body = load_payload("plex_library_new_episode_legacy.json")
    assert "Guid" not in body["Metadata"]
    intent = one(parse_plex(dumps(body), JSON, OFF))
    assert isinstance(intent, RecheckShow)
    assert intent.ids == ExternalIds(tvdb=353546)
    assert intent.episodes == (EpisodeNumber(2, 50),)


@pytest.mark.parametrize(("guids", "ids"), [
    (["com.plexapp.agents.thetvdb://73244/1/2?lang=en"], ExternalIds(tvdb=73244)),
    (["com.plexapp.agents.themoviedb://1399?lang=en"], ExternalIds(tmdb=1399)),
    (["com.plexapp.agents.imdb://tt0944947?lang=en"], ExternalIds(imdb="tt0944947")),
    (["com.plexapp.agents.hama://tvdb-81797/1/1?lang=en"], ExternalIds(tvdb=81797)),
    (["com.plexapp.agents.none://7a1b2c3d?lang=xn"], ExternalIds()),
    (["plex://show/5d9c090e705e7a001e6e94d8", "local://123"], ExternalIds()),
    (["tvdb://abc", "tmdb://", "imdb://12", "nonsense"], ExternalIds()),
])
def test_guid_ids(guids: list[str], ids: ExternalIds) -> None:
    assert guid_ids(guids) == ids


def test_plex_movies_and_other_events_are_ignored() -> None:
    assert one(parse_plex(load("plex_library_new_movie.json"), JSON, OFF)) == Ignored(
        "plex library.new movie: not a show"
    )
    body, content_type = plex_multipart(load("plex_media_play.json"))
    assert one(parse_plex(body, content_type, OFF)) == Ignored("plex media.play: nothing to do")


def test_plex_form_urlencoded_payload_is_read_too() -> None:
    from urllib.parse import urlencode

    body = urlencode({"payload": load("plex_library_new_episode.json").decode()}).encode()
    assert one(parse_plex(body, "application/x-www-form-urlencoded", OFF)) == BLUEY_EPISODE


@pytest.mark.parametrize(("body", "content_type", "field", "status"), [
    (b"--x\r\nContent-Disposition: form-data; name=\"thumb\"\r\n\r\nxx\r\n--x--\r\n",
     "multipart/form-data; boundary=x", "payload", 400),
    (b"anything", "multipart/form-data", "Content-Type", 400),
    (b"--x\r\nContent-Disposition: form-data; name=\"payload\"\r\n\r\n{oops\r\n--x--\r\n",
     "multipart/form-data; boundary=x", None, 400),
    (b"payload=", "application/x-www-form-urlencoded", "payload", 400),
    (b"", "multipart/form-data; boundary=x", "payload", 400),
    (b'{"user":true}', JSON, "event", 422),
    (b'{"event":"library.new"}', JSON, "Metadata", 422),
    (b'{"event":"library.new","Metadata":{"type":"episode"}}', JSON,
     "Metadata.grandparentRatingKey", 422),
    (b'{"event":"library.new","Metadata":{"type":"episode","parentIndex":"x"}}', JSON,
     "Metadata.parentIndex", 422),
])
def test_plex_bad_bodies(body: bytes, content_type: str, field: str | None, status: int) -> None:
    rejects(parse_plex, body, field=field, status=status, content_type=content_type)


# --- Jellyfin -----------------------------------------------------------------------------

JELLYFIN_SERVER = "f1d2c3b4a5968778695a4b3c2d1e0f9a"
SEVERANCE_JF = "3b8e5d1c2a4f47e9b6c0d7a8e9f01234"


def test_jellyfin_series_uses_its_provider_ids_whatever_the_content_type() -> None:
    for content_type in (TEXT, JSON, "", "application/octet-stream"):
        intent = one(parse_jellyfin(load("jellyfin_item_added_series.json"), content_type, OFF))
        assert intent == RecheckShow(
            ids=ExternalIds(tmdb=95396, tvdb=371980, imdb="tt11280740"), title="Severance",
            reason="jellyfin ItemAdded Series", source="jellyfin", year=2022,
            server_ref=ServerRef("jellyfin", SEVERANCE_JF, JELLYFIN_SERVER),
        )


def test_jellyfin_season_and_episode_name_the_series_not_their_own_ids() -> None:
    season = one(parse_jellyfin(load("jellyfin_item_added_season.json"), TEXT, OFF))
    episode = one(parse_jellyfin(load("jellyfin_item_added_episode.json"), TEXT, OFF))
    ref = ServerRef("jellyfin", SEVERANCE_JF, JELLYFIN_SERVER)
    # A season's "Year" is its own; without SeriesPremiereDate the show's year is unknown.
    assert season == RecheckShow(
        ids=ExternalIds(), title="Severance", reason="jellyfin ItemAdded Season",
        source="jellyfin", year=None, seasons=(2,), server_ref=ref,
    )
    assert episode == RecheckShow(
        ids=ExternalIds(), title="Severance", reason="jellyfin ItemAdded Episode",
        source="jellyfin", year=2022, seasons=(2,), episodes=(EpisodeNumber(2, 1),),
        server_ref=ref,
    )
    # The show's year comes from SeriesPremiereDate, never from the episode's own Year.
    later = orjson.loads(load("jellyfin_item_added_episode.json")) | {"Year": 2025}
    dated = one(parse_jellyfin(orjson.dumps(later), TEXT, OFF))
    assert isinstance(dated, RecheckShow)
    assert dated.year == 2022
    undated = one(parse_jellyfin(orjson.dumps(
        {k: v for k, v in later.items() if k != "SeriesPremiereDate"}), TEXT, OFF))
    assert isinstance(undated, RecheckShow)
    assert undated.year is None


def test_jellyfin_template_strings_and_multi_episode_files() -> None:
    intent = one(parse_jellyfin(load("jellyfin_item_added_episode_template.txt"), TEXT, OFF))
    assert isinstance(intent, RecheckShow)
    assert intent.episodes == (EpisodeNumber(2, 1), EpisodeNumber(2, 2))
    assert intent.year is None  # the template's Year is the episode's, not the show's
    assert intent.ids.is_empty()  # Provider_tvdb is the episode's


def test_jellyfin_movie_and_other_notifications_are_ignored() -> None:
    assert isinstance(one(parse_jellyfin(load("jellyfin_item_added_movie.json"), TEXT, OFF)),
                      Ignored)
    assert isinstance(one(parse_jellyfin(load("jellyfin_playback_start.json"), TEXT, OFF)),
                      Ignored)


@pytest.mark.parametrize("body", [b"", b"   \r\n\t "])
def test_jellyfin_empty_body_is_ignored(body: bytes) -> None:
    parsed = decode_jellyfin(body, TEXT, OFF)
    assert parsed.event == "empty"
    assert not any_actionable(parsed.intents)


def test_jellyfin_template_with_empty_placeholders_is_repaired() -> None:
    intent = one(parse_jellyfin(load("jellyfin_template_empty_placeholders.txt"), TEXT, OFF))
    assert isinstance(intent, RecheckShow)
    assert intent.ids == ExternalIds(tmdb=95396, tvdb=371980)


def test_jellyfin_broken_template_is_a_400_that_says_so() -> None:
    error = rejects(parse_jellyfin, load("jellyfin_broken_template.txt"), field=None, status=400,
                    content_type=TEXT)
    assert "template" in error.message


def test_jellyfin_pre_escaped_quotes_are_undone() -> None:
    intent = one(parse_jellyfin(load("jellyfin_escaped_quotes.json"), TEXT, OFF))
    assert isinstance(intent, RecheckShow)
    assert intent.title == 'The "Best" Show & Friends'


@pytest.mark.parametrize(("body", "field"), [
    (b'{"ItemType":"Series","Name":"x"}', "NotificationType"),
    (b'{"NotificationType":"","ItemType":"Series"}', "NotificationType"),
    (b'{"NotificationType":"ItemAdded","ItemType":"Series","Provider_tvdb":"abc"}',
     "Provider_tvdb"),
    (b'{"NotificationType":"ItemAdded","ItemType":"Series"}', "Provider_tvdb"),
    (b'{"NotificationType":"ItemAdded","ItemType":"Episode","SeasonNumber":1}', "SeriesId"),
    (b'{"NotificationType":"ItemAdded","ItemType":"Episode","SeriesName":"x",'
     b'"EpisodeNumber":"one"}', "EpisodeNumber"),
    (b'[1, 2]', None),
])
def test_jellyfin_bad_fields_are_named(body: bytes, field: str | None) -> None:
    rejects(parse_jellyfin, body, field=field, content_type=TEXT)


def test_jellyfin_provider_ids_of_episodes_are_not_validated() -> None:
    body = load_payload("jellyfin_item_added_episode.json") | {"Provider_tvdb": "not-a-number"}
    assert isinstance(one(parse_jellyfin(dumps(body), TEXT, OFF)), RecheckShow)


def test_jellyfin_huge_episode_span_is_clamped() -> None:
    body = load_payload("jellyfin_item_added_episode.json") | {"EpisodeNumberEnd": 999_999}
    intent = one(parse_jellyfin(dumps(body), TEXT, OFF))
    assert isinstance(intent, RecheckShow)
    assert intent.episodes == (EpisodeNumber(2, 1),)


# --- show-update --------------------------------------------------------------------------


def test_show_update_by_each_id() -> None:
    for body, ids in (
        (b'{"tmdb_id": 95396}', ExternalIds(tmdb=95396)),
        (b'{"tvdb_id": "371980", "title": "Severance"}', ExternalIds(tvdb=371980)),
        (b'{"imdb_id": "tt11280740"}', ExternalIds(imdb="tt11280740")),
    ):
        intent = one(parse_show_update(body, JSON, OFF))
        assert isinstance(intent, RecheckShow)
        assert intent.ids == ids
        assert intent.reason == "show-update"


def test_show_update_batch() -> None:
    body = dumps([{"tmdb_id": 1}, {"tvdb_id": 2, "title": "Two"}])
    intents = parse_show_update_batch(body, JSON, OFF)
    assert [i.ids for i in intents if isinstance(i, RecheckShow)] == [
        ExternalIds(tmdb=1), ExternalIds(tvdb=2)
    ]
    assert isinstance(one(parse_show_update_batch(b"[]", JSON, OFF)), Ignored)


@pytest.mark.parametrize(("parse", "body", "field"), [
    (parse_show_update, b'{"title": "Severance"}', "tmdb_id"),
    (parse_show_update, b'{"tmdb_id": "abc"}', "tmdb_id"),
    (parse_show_update, b'{"tmdb_id": 1.5}', "tmdb_id"),
    (parse_show_update, b'{"imdb_id": "12345"}', "imdb_id"),
    (parse_show_update, b'{"tmdb_id": 1, "title": ["x"]}', "title"),
    (parse_show_update, b"[]", None),
    (parse_show_update_batch, b'{"tmdb_id": 1}', None),
    (parse_show_update_batch, b'[{"tmdb_id": 1}, {"tvdb_id": "x"}]', "[1].tvdb_id"),
    (parse_show_update_batch, b'[{"tmdb_id": 1}, {}]', "[1].tmdb_id"),
    (parse_show_update_batch, b"[1]", "[0]"),
])
def test_show_update_bad_bodies(parse: Parser, body: bytes, field: str | None) -> None:
    rejects(parse, body, field=field)


def test_show_update_batch_is_bounded() -> None:
    rejects(parse_show_update_batch, dumps([{"tmdb_id": 1}] * (MAX_BATCH + 1)), field=None)


# --- what every parser shares ---------------------------------------------------------------

ALL_PARSERS: list[Parser] = [
    parse_sonarr, parse_radarr, parse_overseerr, parse_plex, parse_show_update,
    parse_show_update_batch,
]


@pytest.mark.parametrize("parse", ALL_PARSERS)
@pytest.mark.parametrize(("body", "status"), [
    (b"", 400),
    (b"   ", 400),
    (b"{", 400),
    (b"{'single': 'quotes'}", 400),
    (b"\xff\xfe{}", 400),
    (b'{"a": "\\u0000"}', 400),
    (b"[" * 300 + b"]" * 300, 400),
    (b'"a string"', 422),
    (b"null", 422),
])
def test_every_parser_rejects_unreadable_bodies(parse: Parser, body: bytes, status: int) -> None:
    rejects(parse, body, field=None, status=status)


def test_load_json_canonical_form_ignores_key_order_and_whitespace() -> None:
    _, a = load_json(b'{\n  "b": 1,\n  "a": [1, 2]\n}')
    _, b = load_json(b'\xef\xbb\xbf{"a":[1,2],"b":1}')
    assert a == b


def test_sonarr_retry_with_other_indentation_is_the_same_delivery() -> None:
    first = decode_sonarr(load("sonarr_grab.json"), JSON, OFF)
    again = decode_sonarr(dumps(load_payload("sonarr_grab.json")), JSON, OFF)
    assert delivery_key("sonarr", first.payload) == delivery_key("sonarr", again.payload)
    assert delivery_key("radarr", first.payload) != delivery_key("sonarr", first.payload)


def test_event_names_are_bounded() -> None:
    body = {**load_payload("radarr_grab.json"), "eventType": "X" * 10_000}
    parsed = decode_radarr(dumps(body), JSON, OFF)
    assert len(parsed.event) == 64
    assert len(decode_overseerr(dumps({"notification_type": "Y" * 500}), JSON, OFF).event) == 64


def test_dotted_and_split_title_year() -> None:
    assert dotted(("episodes", 0, "seasonNumber")) == "episodes[0].seasonNumber"
    assert dotted((3, "tmdb_id")) == "[3].tmdb_id"
    assert split_title_year("Dune: Part Two (2024)") == ("Dune: Part Two", 2024)
    assert split_title_year("(2024)") == ("(2024)", None)
    assert split_title_year("  ") == (None, None)
    assert split_title_year("x" * 100_000 + " " * 100_000) == ("x" * 100_000, None)


# --- intents --------------------------------------------------------------------------------

EVERY_INTENT: list[Intent] = [
    RequestMedia(kind="show", ids=SEVERANCE, title="Severance", year=2022, seasons=(1, 2),
                 source="overseerr", requester="alice", source_ref="42"),
    RequestMedia(kind="movie", ids=DUNE, title=None, year=None, seasons=None, source="radarr"),
    BLUEY_EPISODE,
    RecheckMovie(ids=DUNE, title="Dune: Part Two", year=2024, reason="radarr Grab",
                 source="radarr"),
    RemoveMedia(kind="show", ids=SEVERANCE, title="Severance", source="sonarr", reason="x"),
    Ignored("nothing"),
    TestEvent("plex"),
]


@pytest.mark.parametrize("intent", EVERY_INTENT)
def test_intents_survive_a_json_round_trip(intent: Intent) -> None:
    assert intent_from_dict(orjson.loads(orjson.dumps(intent_to_dict(intent)))) == intent


def test_intent_from_dict_rejects_strangers() -> None:
    for data in ({"type": "Nope"}, {"type": "Ignored", "why": "x"}, {"reason": "x"},
                 {"type": "RecheckShow", "ids": {"bogus": 1}}):
        with pytest.raises(ValueError, match="intent"):
            intent_from_dict(data)


def test_actionable() -> None:
    assert [is_actionable(i) for i in EVERY_INTENT] == [True] * 5 + [False] * 2
    assert not any_actionable([Ignored("x"), TestEvent("sonarr")])


# --- property: junk never escapes as anything but a PayloadError ---------------------------

DECODERS: list[Decoder] = [
    decode_sonarr, decode_radarr, decode_overseerr, decode_plex, decode_jellyfin,
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                  max_size=4),
    max_leaves=20,
)
REAL = [
    "sonarr_grab.json", "sonarr_download_import_complete.json", "sonarr_series_add.json",
    "radarr_movie_added.json", "radarr_download.json", "overseerr_media_auto_approved_tv.json",
    "overseerr_media_approved_movie.json", "plex_library_new_episode.json",
    "plex_library_new_show.json", "jellyfin_item_added_episode.json",
    "jellyfin_item_added_series.json",
]
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_decoder(decode: Decoder, body: bytes, content_type: str) -> None:
    statuses: list[int] = []
    for options in (OFF, ParseOptions(follow_deletes=True, accept_pending=True)):
        try:
            parsed = decode(body, content_type, options)
        except PayloadError as exc:
            statuses.append(exc.status)
            continue
        assert parsed.intents
        for intent in parsed.intents:
            assert intent_from_dict(intent_to_dict(intent)) == intent
    assert all(400 <= status < 500 for status in statuses), statuses


@PROPERTY
@given(body=st.binary(max_size=300), content_type=st.text(max_size=60))
def test_random_bytes_only_ever_raise_payload_errors(body: bytes, content_type: str) -> None:
    for decode in DECODERS:
        check_decoder(decode, body, content_type)


@PROPERTY
@given(value=json_values)
def test_random_json_only_ever_raises_payload_errors(value: Any) -> None:
    body = orjson.dumps(value)
    for decode in DECODERS:
        check_decoder(decode, body, JSON)


def mutate(data: Any, path: list[str | int], replacement: Any, delete: bool) -> Any:
    """``data`` with the node at ``path`` (as far as it exists) replaced or deleted."""
    data = copy.deepcopy(data)
    node = data
    for step in path[:-1]:
        if isinstance(node, dict) and isinstance(step, str) and step in node:
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and node:
            node = node[step % len(node)]
        else:
            return data
    last = path[-1] if path else None
    if isinstance(node, dict) and isinstance(last, str) and last in node:
        if delete:
            del node[last]
        else:
            node[last] = replacement
    elif isinstance(node, list) and isinstance(last, int) and node:
        node[last % len(node)] = replacement
    return data


def paths_of(data: Any) -> list[list[str | int]]:
    out: list[list[str | int]] = []

    def walk(node: Any, path: list[str | int]) -> None:
        if path:
            out.append(path)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, [*path, key])
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, [*path, index])

    walk(data, [])
    return out


@PROPERTY
@given(data=st.data())
def test_mutated_real_payloads_only_ever_raise_payload_errors(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(REAL))
    body = load_payload(name)
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(paths_of(body)))
        body = mutate(body, path, data.draw(json_values), data.draw(st.booleans()))
    raw = orjson.dumps(body)
    for decode in DECODERS:
        check_decoder(decode, raw, JSON)
    body_mp, content_type = plex_multipart(raw)
    check_decoder(decode_plex, body_mp, content_type)


@pytest.mark.parametrize("disposition", [
    b'form-data; name="payload"',
    b"form-data; name=payload",
    b"form-data; name*=UTF-8''pay%6Coad",
    b'FORM-DATA; NAME="payload"; filename="p.json"',
])
def test_plex_payload_part_is_found_by_any_spelling_of_its_name(disposition: bytes) -> None:
    body = (b"--b\r\nContent-Disposition: form-data; filename=\"a; name=payload\"; name=\"thumb\""
            b"\r\nContent-Type: image/jpeg\r\n\r\nJPEG\r\n--b\r\nContent-Disposition: "
            + disposition
            + b"\r\nContent-Type: application/json\r\n\r\n{\"event\": \"x\"}\r\n--b--\r\n")
    for content_type in ('multipart/form-data; boundary="b"', "Multipart/Form-Data; BOUNDARY=b"):
        assert payload_json(body, content_type) == b'{"event": "x"}'
