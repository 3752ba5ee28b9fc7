from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from riven_async.commands import config_file
from riven_async.config import (
    LiveSettings,
    Settings,
    load_settings,
    parse_window,
)
from riven_async.errors import ConfigError

GOOD = '[server]\napi_key = "k-123456"\nport = 9000\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path / "nope.toml")
    assert str(tmp_path / "nope.toml") in str(err.value)
    assert "file not found" in str(err.value)


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\napi_key = "x"\nport = = 3\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "line 3" in str(err.value)
    assert "column" in str(err.value)


def test_unknown_key_in_a_section_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "hots = 'x'\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.key == "server.hots"
    assert "unknown key" in err.value.reason


def test_unknown_key_in_a_nested_upstream_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "[upstreams.realdebrid]\napikey = 'x'\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.key == "upstreams.realdebrid.apikey"


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\napi_key = "k-123456"\nport = "eighty"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.key == "server.port"
    assert "integer" in err.value.reason


def test_bad_rate_window_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "[upstreams.tmdb]\nrate_limits = ['forty per second']\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.key == "upstreams.tmdb.rate_limits"


def test_empty_api_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9000\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.key == "server.api_key"


def test_env_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIVEN_SERVER__PORT", "9100")
    monkeypatch.setenv("RIVEN_UPSTREAMS__REALDEBRID__API_KEY", "from-env")
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.server.port == 9100
    assert settings.upstreams.realdebrid.api_key.get_secret_value() == "from-env"


def test_partial_upstream_table_keeps_that_upstreams_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD + "[upstreams.realdebrid]\nenabled = true\n"))
    assert settings.upstreams.realdebrid.base_url.endswith("/rest/1.0")
    assert settings.upstreams.realdebrid.rate_limits == ["250/60s"]


def test_secrets_never_render(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD + "[upstreams.torbox]\napi_key = 'tb-secret'\n"))
    assert "tb-secret" not in repr(settings)
    assert "k-123456" not in str(settings.model_dump())
    assert set(settings.secrets()) == {"k-123456", "tb-secret"}


def test_credentials_directory_supplies_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "RIVEN_SERVER__API_KEY").write_text("from-credential\n")
    (creds / "upstreams__realdebrid__api_key").write_text("rd-credential")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = load_settings(write(tmp_path, "[upstreams.realdebrid]\napi_key = ''\n"))
    assert settings.server.api_key.get_secret_value() == "from-credential"
    assert settings.upstreams.realdebrid.api_key.get_secret_value() == "rd-credential"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250/60s", (250, 60.0)),
        ("12/1s", (12, 1.0)),
        ("5000/1d", (5000, 86400.0)),
        ("60/1h", (60, 3600.0)),
        ("20 / 10", (20, 10.0)),
    ],
)
def test_parse_window(text: str, expected: tuple[int, float]) -> None:
    assert parse_window(text) == expected


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _leaf_keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def test_example_config_documents_every_key() -> None:
    text = (Path(__file__).parents[2] / "config.example.toml").read_text()
    parsed = tomllib.loads(text)
    documented = set()
    for line in text.splitlines():
        stripped = line.lstrip("# ").split("=")[0].strip()
        if stripped:
            documented.add(stripped.split()[0])
    for key in _leaf_keys(Settings):
        leaf = key.rsplit(".", 1)[-1]
        assert leaf in documented, f"config.example.toml does not document {key}"
    assert "server" in parsed


def test_example_config_is_valid_once_a_key_is_set(tmp_path: Path) -> None:
    path = tmp_path / "riven-async" / "config.toml"
    key = config_file.write_new_config(path, force=False)
    assert (path.stat().st_mode & 0o777) == 0o600
    settings = load_settings(path)
    assert settings.server.api_key.get_secret_value() == key
    assert settings.server.host == "127.0.0.1"


def test_reload_keeps_running_settings_on_error(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    live = LiveSettings(load_settings(path), path)
    path.write_text("[server\n")
    with pytest.raises(ConfigError):
        live.reload()
    assert live.current.server.port == 9000
    path.write_text(GOOD.replace("9000", "9001"))
    assert live.reload().server.port == 9001
    assert isinstance(live.current.server.api_key, SecretStr)
