"""A stremio addon's config segment (which may carry a debrid key) never reaches a message."""

from __future__ import annotations

from riven_async.config import CometSection, load_settings_from_dict
from riven_async.core.http import Scrubber
from riven_async.upstreams import UpstreamClients, addon_config_segment, policy_from_section

TORRENTIO_CONFIG = "sort=qualitysize|realdebrid=RDKEY123456789"
COMET_CONFIG = "eyJkZWJyaWRBcGlLZXkiOiJzZWNyZXQifQ"


def test_the_config_segment_is_the_path_after_the_origin() -> None:
    assert addon_config_segment(f"http://127.0.0.1:7000/{TORRENTIO_CONFIG}/") == (
        TORRENTIO_CONFIG)
    assert addon_config_segment("http://127.0.0.1:7000") is None
    assert addon_config_segment("http://host/comet") is None  # a mount point, no config


def test_an_addons_own_config_is_masked_in_its_messages() -> None:
    section = CometSection(base_url=f"http://127.0.0.1:8000/{COMET_CONFIG}")
    policy = policy_from_section("comet", section)
    assert COMET_CONFIG in policy.secrets()
    text = Scrubber(policy.secrets()).text(f"GET http://127.0.0.1:8000/{COMET_CONFIG}/x failed")
    assert COMET_CONFIG not in text
    # Other upstreams' sections are not addons: their paths are left alone.
    tmdb = policy_from_section("tmdb", CometSection(base_url="https://api.example/3/abcdefghij"))
    assert "3/abcdefghij" not in tmdb.secrets()


async def test_every_client_masks_every_enabled_addons_config() -> None:
    settings = load_settings_from_dict({"upstreams": {
        "torrentio": {"base_url": f"http://127.0.0.1:7000/{TORRENTIO_CONFIG}"},
        "comet": {"enabled": True, "base_url": f"http://127.0.0.1:8000/{COMET_CONFIG}"},
        "zilean": {"enabled": True},
    }})
    async with UpstreamClients.from_settings(settings) as clients:
        for name in ("torrentio", "comet", "zilean", "tmdb"):
            secrets = clients[name].policy.secrets()
            assert TORRENTIO_CONFIG in secrets, name
            assert COMET_CONFIG in secrets, name
