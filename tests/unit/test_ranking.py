"""Ranking releases against a profile: resolutions, trash, fit to the item, size, order."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import ValidationError

from riven_async.config import RankingSection
from riven_async.pipeline import ranking
from riven_async.pipeline.ranking import (
    MAX_TITLE_CHARS,
    Candidate,
    RankedRelease,
    Ranker,
    Target,
)

GB = 1_000_000_000
MB = 1_000_000
DUNE = Target.for_movie("Dune: Part Two", 2024)


def infohash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def cand(title: str, size: int | None = 4 * GB, seeders: int | None = 50, **kw: Any) -> Candidate:
    return Candidate(infohash(title), title, size, seeders, **kw)


def ranker(**profile: Any) -> Ranker:
    return Ranker(RankingSection(**profile))


def by_title(results: list[RankedRelease]) -> dict[str, RankedRelease]:
    return {r.raw_title: r for r in results}


# --- profile: resolutions, trash, codecs, languages -------------------------------------


def test_2160p_only_profile_never_picks_1080p() -> None:
    titles = [
        "Dune.Part.Two.2024.1080p.BluRay.DTS-HD.MA.5.1.x264-GRP",
        "Dune.Part.Two.2024.2160p.WEB-DL.DDP5.1.Atmos.DV.HDR.H.265-FLUX",
        "Dune.Part.Two.2024.1080p.WEB-DL.DDP5.1.H.264-FLUX",
        "Dune.Part.Two.2024.720p.WEB.x264-GRP",
        "Dune.Part.Two.2024.2160p.WEB-DL.DDP5.1.HDR.x265-NTb",
    ]
    best = ranker(resolutions=["2160p"]).rank(DUNE, [cand(t, 12 * GB) for t in titles])
    assert [r.resolution for r in best] == ["2160p", "2160p"]
    assert all("2160p" in r.raw_title for r in best)


def test_2160p_only_profile_takes_nothing_when_only_1080p_exists() -> None:
    only_hd = [cand("Dune.Part.Two.2024.1080p.WEB-DL.DDP5.1.H.264-FLUX")]
    r = ranker(resolutions=["2160p"])
    assert r.rank(DUNE, only_hd) == []
    [flagged] = r.evaluate(DUNE, only_hd)
    assert not flagged.fits
    assert flagged.reject_reason == "profile:resolution"


def test_resolution_order_of_the_profile_decides_before_the_score() -> None:
    titles = [
        "Dune.Part.Two.2024.720p.BluRay.DTS-HD.MA.5.1.x264-GRP",  # higher RTN score
        "Dune.Part.Two.2024.1080p.WEB.x264-GRP",
    ]
    best = ranker(resolutions=["1080p", "720p"]).rank(DUNE, [cand(t) for t in titles])
    assert [r.resolution for r in best] == ["1080p", "720p"]
    assert best[0].rtn_rank < best[1].rtn_rank
    assert best[0].rank > best[1].rank


@pytest.mark.parametrize(
    "title",
    [
        "Dune Part Two 2024 HDCAM x264",
        "Dune Part Two 2024 CAMRip",
        "Dune.Part.Two.2024.HDTS.x264",
        "Dune.Part.Two.2024.TS.x264-GRP",
        "Dune Part Two 2024 TELESYNC 720p",
        "Dune.Part.Two.2024.HDTC.720p",
        "Dune.Part.Two.2024.DVDSCR.x264",
        "Dune Part Two 2024 SCR 1080p",
    ],
)
def test_cam_ts_tc_scr_are_excluded_by_default(title: str) -> None:
    r = ranker(resolutions=["1080p", "720p", "unknown"])
    assert r.rank(DUNE, [cand(title)]) == []
    [flagged] = r.evaluate(DUNE, [cand(title)])
    assert flagged.reject_reason is not None
    assert flagged.reject_reason.startswith("profile:trash_")


def test_the_profile_can_allow_a_telesync() -> None:
    r = ranker(resolutions=["720p"], exclude_qualities=["CAM"])
    [ts] = r.rank(DUNE, [cand("Dune Part Two 2024 TELESYNC 720p")])
    assert ts.fits


def test_exclude_terms_reject_matching_titles() -> None:
    r = ranker(exclude_terms=[r"\bKORSUB\b"])
    titles = [
        "Dune.Part.Two.2024.1080p.WEB.KORSUB.x264-GRP",
        "Dune.Part.Two.2024.1080p.WEB.x264-GRP",
    ]
    [kept] = r.rank(DUNE, [cand(t) for t in titles])
    assert "KORSUB" not in kept.raw_title


def test_preferred_codec_wins_over_an_otherwise_equal_release() -> None:
    titles = [
        "Dune.Part.Two.2024.1080p.WEB-DL.DDP5.1.x264-GRP",
        "Dune.Part.Two.2024.1080p.WEB-DL.DDP5.1.HEVC-GRP",
    ]
    best = ranker(preferred_codecs=["x265"]).rank(DUNE, [cand(t) for t in titles])
    assert "HEVC" in best[0].raw_title
    best = ranker(preferred_codecs=["avc", "hevc"]).rank(DUNE, [cand(t) for t in titles])
    assert "x264" in best[0].raw_title


def test_preferred_and_excluded_languages() -> None:
    titles = ["Dune.Part.Two.2024.1080p.FRENCH.WEB-DL-GRP", "Dune.Part.Two.2024.1080p.WEB-DL-GRP"]
    best = ranker(preferred_languages=["fr"]).rank(DUNE, [cand(t) for t in titles])
    assert "FRENCH" in best[0].raw_title
    kept = ranker(exclude_languages=["fr"]).rank(DUNE, [cand(t) for t in titles])
    assert [r.raw_title for r in kept] == [titles[1]]


def test_dolby_vision_needs_an_hdr_fallback_unless_allowed() -> None:
    dv_only = "Dune.Part.Two.2024.2160p.WEB-DL.DDP5.1.DV.H.265-FLUX"
    hybrid = "Dune.Part.Two.2024.2160p.WEB-DL.DDP5.1.DV.HDR.H.265-FLUX"
    r = ranker(resolutions=["2160p"])
    results = by_title(r.evaluate(DUNE, [cand(dv_only, 20 * GB), cand(hybrid, 20 * GB)]))
    assert results[hybrid].fits
    assert results[dv_only].reject_reason == "dolby_vision_only"
    r = ranker(resolutions=["2160p"], allow_dolby_vision_only=True)
    assert len(r.rank(DUNE, [cand(dv_only, 20 * GB), cand(hybrid, 20 * GB)])) == 2


# --- fit to the item -----------------------------------------------------------------


def test_wrong_title_is_rejected_and_aliases_match() -> None:
    target = Target.for_episode("Money Heist", 1, 1, aliases=["La Casa de Papel"])
    titles = [
        "Money.Heist.S01E01.1080p.WEB.x264-GRP",
        "La.Casa.de.Papel.S01E01.1080p.WEB.x264-GRP",
        "Better.Call.Saul.S01E01.1080p.WEB.x264-GRP",
    ]
    results = by_title(ranker().evaluate(target, [cand(t, GB) for t in titles]))
    assert results[titles[0]].fits
    assert results[titles[1]].fits
    assert results[titles[2]].reject_reason == "title_mismatch"


def test_movie_year_may_differ_by_one_at_most() -> None:
    titles = {
        "Dune.Part.Two.2024.1080p.WEB.x264-GRP": True,
        "Dune.Part.Two.2023.1080p.WEB.x264-GRP": True,
        "Dune.Part.Two.2025.1080p.WEB.x264-GRP": True,
        "Dune.Part.Two.2021.1080p.WEB.x264-GRP": False,
    }
    results = by_title(ranker().evaluate(DUNE, [cand(t) for t in titles]))
    for title, fits in titles.items():
        assert results[title].fits is fits, title
    assert results["Dune.Part.Two.2021.1080p.WEB.x264-GRP"].reject_reason == "wrong_year"


def test_an_episode_release_is_not_a_movie() -> None:
    target = Target.for_movie("Fargo", 1996)
    [flagged] = ranker().evaluate(target, [cand("Fargo.S01E01.1080p.WEB.x264-GRP")])
    assert flagged.reject_reason == "not_a_movie"


EPISODE_TITLES = {
    "Severance.S02E05.1080p.WEB.H264-GRP": None,
    "Severance.S02.1080p.WEB.H264-GRP": None,
    "Severance.Complete.Series.1080p.WEB.H264-GRP": None,
    "Severance.S01-S02.1080p.WEB.H264-GRP": None,
    "Severance.S02E04E05.1080p.WEB.H264-GRP": None,
    "Severance.S02E06.1080p.WEB.H264-GRP": "wrong_episode",
    "Severance.S03.1080p.WEB.H264-GRP": "wrong_season",
    "Severance.S01E05.1080p.WEB.H264-GRP": "wrong_season",
}


def test_an_episode_fits_its_own_release_and_every_pack_that_holds_it() -> None:
    target = Target.for_episode("Severance", 2, 5, year=2022, episode_count=10)
    results = by_title(ranker().evaluate(target, [cand(t, 2 * GB) for t in EPISODE_TITLES]))
    for title, reason in EPISODE_TITLES.items():
        assert results[title].reject_reason == reason, title
        assert results[title].fits is (reason is None)
    assert results["Severance.S02.1080p.WEB.H264-GRP"].is_pack
    assert results["Severance.S02.1080p.WEB.H264-GRP"].seasons == (2,)
    assert not results["Severance.S02E05.1080p.WEB.H264-GRP"].is_pack
    assert results["Severance.S02E04E05.1080p.WEB.H264-GRP"].episodes == (4, 5)


def test_a_whole_season_prefers_the_pack_and_rejects_single_episodes() -> None:
    target = Target.for_season("Severance", 2, year=2022, episode_count=10)
    titles = [
        "Severance.S02E01.1080p.WEB.H264-GRP",
        "Severance.S02E01-E04.1080p.WEB.H264-GRP",
        "Severance.S02.1080p.WEB.H264-GRP",
        "Severance.S02E01-E10.1080p.WEB.H264-GRP",
        "Severance.S03.1080p.WEB.H264-GRP",
    ]
    r = ranker()
    results = by_title(r.evaluate(target, [cand(t, 10 * GB) for t in titles]))
    assert results[titles[0]].reject_reason == "partial_season"
    assert results[titles[1]].reject_reason == "partial_season"
    assert results[titles[4]].reject_reason == "wrong_season"
    best = r.rank(target, [cand(t, 10 * GB) for t in titles])
    assert {b.raw_title for b in best} == {titles[2], titles[3]}
    assert all(b.is_pack for b in best)


def test_a_release_older_than_the_show_is_another_show() -> None:
    target = Target.for_episode("Doctor Who", 1, 1, year=2005)
    titles = ["Doctor.Who.1963.S01E01.480p.DVD-GRP", "Doctor.Who.2005.S01E01.1080p.WEB-GRP"]
    results = by_title(
        ranker(resolutions=["1080p", "480p"]).evaluate(target, [cand(t, GB) for t in titles])
    )
    assert results[titles[0]].reject_reason == "wrong_year"
    assert results[titles[1]].fits


def test_specials_are_season_zero() -> None:
    target = Target.for_episode("Severance", 0, 1)
    [fits] = ranker().rank(target, [cand("Severance.S00E01.1080p.WEB.H264-GRP", GB)])
    assert fits.seasons == (0,)


# --- size, seeders, limits -----------------------------------------------------------


def test_movie_size_bounds() -> None:
    r = ranker(movie_min_size_mb=500, movie_max_size_gb=10)
    title = "Dune.Part.Two.2024.1080p.WEB.x264-GRP"
    sizes = {100 * MB: "size_too_small", 4 * GB: None, 15 * GB: "size_too_large", None: None}
    for size, reason in sizes.items():
        [result] = r.evaluate(DUNE, [cand(title, size)])
        assert result.reject_reason == reason, size


def test_episode_size_bounds_divide_a_season_pack_by_its_episodes() -> None:
    r = ranker(episode_min_size_mb=100, episode_max_size_gb=1.5)
    target = Target.for_season("Severance", 2, episode_count=10)
    pack = "Severance.S02.1080p.WEB.H264-GRP"
    assert r.evaluate(target, [cand(pack, 10 * GB)])[0].fits  # 1 GB an episode
    assert r.evaluate(target, [cand(pack, 20 * GB)])[0].reject_reason == "size_too_large"
    assert r.evaluate(target, [cand(pack, 500 * MB)])[0].reject_reason == "size_too_small"
    episode = Target.for_episode("Severance", 2, 5)
    single = "Severance.S02E05.1080p.WEB.H264-GRP"
    assert r.evaluate(episode, [cand(single, 2 * GB)])[0].reject_reason == "size_too_large"
    # A multi-season pack's episode count is unknown: only too small a whole is refused.
    multi = "Severance.S01-S02.1080p.WEB.H264-GRP"
    assert r.evaluate(episode, [cand(multi, 80 * GB)])[0].fits
    assert r.evaluate(episode, [cand(multi, 50 * MB)])[0].reject_reason == "size_too_small"


def test_min_seeders_unless_cached() -> None:
    r = ranker(min_seeders=5)
    title = "Dune.Part.Two.2024.1080p.WEB.x264-GRP"
    assert r.evaluate(DUNE, [cand(title, seeders=2)])[0].reject_reason == "too_few_seeders"
    assert r.evaluate(DUNE, [cand(title, seeders=2, cached_hint=True)])[0].fits
    assert r.evaluate(DUNE, [cand(title, seeders=None)])[0].fits


def test_keeps_the_best_n_in_rank_order() -> None:
    groups = ["NTb", "FLUX", "GRP", "EDITH", "SiGMA", "playWEB", "HONE", "CMRG"]
    titles = [f"Dune.Part.Two.2024.1080p.WEB-DL.DDP5.1.x264-{g}" for g in groups]
    titles += [f"Dune.Part.Two.2024.720p.WEB.x264-{g}" for g in groups]
    best = ranker(max_results=5).rank(DUNE, [cand(t, seeders=i) for i, t in enumerate(titles)])
    assert len(best) == 5
    assert all(r.resolution == "1080p" for r in best)
    assert [r.rank for r in best] == sorted((r.rank for r in best), reverse=True)
    # Equal ranks: more seeders first.
    assert [r.seeders for r in best] == sorted((r.seeders or 0 for r in best), reverse=True)


def test_duplicate_infohashes_merge_into_one_release() -> None:
    title = "Dune.Part.Two.2024.1080p.WEB.x264-GRP"
    first = Candidate(infohash(title).upper(), title, 4 * GB, 3, "torrentio", False)
    second = Candidate(infohash(title), title, None, 40, "zilean", True)
    [merged] = ranker().rank(DUNE, [first, second])
    assert merged.seeders == 40
    assert merged.cached_hint
    assert merged.size_bytes == 4 * GB


def test_overlong_and_empty_titles_are_rejected_without_parsing() -> None:
    r = ranker()
    long_title = "Dune.Part.Two.2024.1080p." + "x" * MAX_TITLE_CHARS
    results = r.evaluate(DUNE, [cand(long_title), cand("   ")])
    assert {x.reject_reason for x in results} == {"title_too_long", "empty_title"}
    assert r.cache_stats().misses == 0


def test_a_title_the_parser_chokes_on_is_rejected_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(title: str) -> None:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(ranking, "parse", explode)
    [flagged] = ranker().evaluate(DUNE, [cand("Dune.Part.Two.2024.1080p.WEB.x264-GRP")])
    assert flagged.reject_reason == "unparseable"


def test_identical_titles_are_parsed_once() -> None:
    r = ranker()
    title = "Dune.Part.Two.2024.1080p.WEB.x264-GRP"
    r.rank(DUNE, [Candidate(infohash(str(i)), title, 4 * GB, 1) for i in range(50)])
    r.rank(DUNE, [cand(title)])
    stats = r.cache_stats()
    assert (stats.misses, stats.entries) == (1, 1)
    assert stats.hits == 50


def test_parse_cache_is_bounded() -> None:
    r = Ranker(RankingSection(), cache_size=3)
    r.rank(DUNE, [cand(f"Dune.Part.Two.2024.1080p.WEB.x264-G{i}") for i in range(10)])
    assert r.cache_stats().entries == 3


def test_parsed_is_plain_json_and_a_fresh_copy() -> None:
    r = ranker()
    title = "Dune.Part.Two.2024.1080p.WEB.x264-GRP"
    [first] = r.rank(DUNE, [cand(title)])
    first.parsed["resolution"] = "mutated"
    [second] = r.rank(DUNE, [cand(title)])
    assert second.parsed["resolution"] == "1080p"
    assert second.parsed["year"] == 2024


async def test_rank_async_matches_rank_and_yields_to_the_loop() -> None:
    titles = [f"Severance.S02E{e:02d}.1080p.WEB.H264-G{g}" for e in range(1, 11) for g in range(6)]
    candidates = [cand(t, GB) for t in titles]
    target = Target.for_episode("Severance", 2, 3)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    result = await ranker(max_results=100).rank_async(target, candidates, slice_s=0.0)
    task.cancel()
    assert ticks > len(candidates) // 2
    assert result == ranker(max_results=100).rank(target, candidates)
    assert {r.raw_title for r in result} == {t for t in titles if "E03" in t}


# --- construction and config ---------------------------------------------------------


def test_targets_validate_their_shape() -> None:
    with pytest.raises(ValueError, match="season"):
        Target("episode", "Severance", episode=1)
    with pytest.raises(ValueError, match="episode"):
        Target("episode", "Severance", season=1)
    with pytest.raises(ValueError, match="title"):
        Target.for_movie("  ", 2024)


def test_ranking_section_normalises_and_validates() -> None:
    section = RankingSection.model_validate(
        {
            "resolutions": ["4K", "1080P"],
            "exclude_qualities": ["cam", "telesync"],
            "preferred_codecs": ["x265", "H264"],
            "preferred_languages": ["EN"],
        }
    )
    assert section.resolutions == ["2160p", "1080p"]
    assert section.exclude_qualities == ["CAM", "TS"]
    assert section.preferred_codecs == ["hevc", "avc"]
    assert section.preferred_languages == ["en"]
    bad: list[dict[str, Any]] = [
        {"resolutions": []},
        {"resolutions": ["1080p", "1080p"]},
        {"resolutions": ["8k"]},
        {"exclude_terms": ["(unclosed"]},
        {"exclude_terms": ["//"]},
        {"preferred_languages": ["english!"]},
        {"title_similarity": 0},
        {"max_results": 0},
        {"movie_max_size_gb": -1},
    ]
    for data in bad:
        with pytest.raises(ValidationError):
            RankingSection.model_validate(data)


# --- properties ----------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    titles=st.lists(st.text(max_size=MAX_TITLE_CHARS + 20), max_size=6),
    kind=st.sampled_from(["movie", "episode", "season"]),
)
def test_ranking_never_raises_and_is_ordered_by_rank(titles: list[str], kind: str) -> None:
    target = {
        "movie": DUNE,
        "episode": Target.for_episode("Severance", 2, 5, year=2022),
        "season": Target.for_season("Severance", 2, episode_count=10),
    }[kind]
    known = [
        "Dune.Part.Two.2024.1080p.WEB.x264-GRP",
        "Dune.Part.Two.2024.720p.WEB.x264-GRP",
        "Severance.S02.1080p.WEB.H264-GRP",
        "Severance.S02E05.720p.WEB.H264-GRP",
    ]
    candidates = [cand(t, None) for t in titles + known]
    r = ranker(resolutions=["1080p", "720p", "unknown"], max_results=3)
    best = r.rank(target, candidates)
    assert len(best) <= 3
    assert all(x.fits for x in best)
    assert [x.rank for x in best] == sorted((x.rank for x in best), reverse=True)
    everything = r.evaluate(target, candidates)
    assert len(everything) == len({c.infohash for c in candidates})
    fitting = [x for x in everything if x.fits]
    assert everything[: len(fitting)] == fitting
    assert best == fitting[:3]
