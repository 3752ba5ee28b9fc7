"""``riven-async config``: comment-preserving, validated, atomic, locked edits; show/get/init."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from riven_async import keys
from riven_async.cli import execute
from riven_async.commands import config_file
from riven_async.commands.base import Output
from riven_async.config import EX_CONFIG, example_config_text, load_settings
from riven_async.errors import ConfigError
from riven_async.sim.ports import free_port
from tests.cli.conftest import RunCli, RunningDaemon, write_config
from tests.conftest import TEST_API_KEY

COMMENTED = """\
# My riven-async config.   Hand-written, odd spacing kept on purpose.

[server]
# where we listen
host   =   "127.0.0.1"     # loopback only
port = 8787  # the port
api_key = "KEY-0123456789"  # keep secret

[ranking]
resolutions = [ "1080p",   "720p" ]   # best first
exclude_terms = []

[upstreams.realdebrid]
enabled = false
api_key = ""

[library]
mount_dir = "/mnt/debrid/__all__"
root = "/mnt/library"
# trailing comment
"""


async def text_of(path: Path) -> str:
    return await anyio.Path(path).read_text(encoding="utf-8")


def only_line_changed(before: str, after: str, old_line: str, new_line: str) -> None:
    assert before.count(old_line) == 1
    assert after == before.replace(old_line, new_line)


@pytest.fixture
def commented(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(COMMENTED, encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("key", "value", "old_line", "new_line"),
    [
        ("server.port", "9000", "port = 8787  # the port", "port = 9000  # the port"),
        ("server.host", "0.0.0.0", 'host   =   "127.0.0.1"     # loopback only',
         'host   =   "0.0.0.0"     # loopback only'),
        ("ranking.resolutions", "2160p,1080p", 'resolutions = [ "1080p",   "720p" ]   # best first',
         'resolutions = ["2160p", "1080p"]   # best first'),
        ("upstreams.realdebrid.enabled", "true", "enabled = false", "enabled = true"),
        ("upstreams.realdebrid.api_key", "RD-SECRET", 'api_key = ""', 'api_key = "RD-SECRET"'),
    ],
)
async def test_set_changes_only_that_value_and_keeps_every_comment(
    run_cli: RunCli, commented: Path, key: str, value: str, old_line: str, new_line: str
) -> None:
    before = await text_of(commented)
    result = await run_cli(commented, "config", "set", key, value, "--no-reload")
    assert result.code == 0, result.err
    only_line_changed(before, await text_of(commented), old_line, new_line)


async def test_set_on_the_shipped_example_changes_one_line(
    run_cli: RunCli, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    result = await run_cli(path, "config", "init")
    assert result.code == 0, result.err
    before = await text_of(path)
    result = await run_cli(path, "config", "set", "upstreams.torbox.api_key", "tb-key",
                           "--no-reload")
    assert result.code == 0, result.err
    after = await text_of(path)
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True)
               if a != b]
    assert len(changed) == 1
    assert changed[0][1].startswith('api_key = "tb-key"')
    assert "tb-key" not in result.out  # a secret is masked in the confirmation


async def test_set_adds_a_missing_key_to_its_section(run_cli: RunCli, commented: Path) -> None:
    result = await run_cli(commented, "config", "set", "server.pid_file", "/run/r.pid",
                           "--no-reload")
    assert result.code == 0, result.err
    text = await text_of(commented)
    assert tomllib.loads(text)["server"]["pid_file"] == "/run/r.pid"
    assert text.startswith(COMMENTED.split("[ranking]")[0].rstrip("\n"))
    assert load_settings(commented).server.pid_file == Path("/run/r.pid")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (("set", "server.port", "eighty"), "server.port"),
        (("set", "server.port", "70000"), "server.port"),
        (("set", "server.prot", "80"), "server.prot"),
        (("set", "ranking.resolutions", "1080p,999p"), "ranking.resolutions"),
        (("set", "library.root", "/mnt/debrid/__all__/lib"), "library.root"),
        (("set", "server", "x"), "server"),
        (("unset", "server.api_key"), "server.api_key"),
    ],
)
async def test_an_invalid_edit_leaves_the_file_untouched_and_names_the_key(
    run_cli: RunCli, commented: Path, argv: tuple[str, ...], named: str
) -> None:
    before = await anyio.Path(commented).read_bytes()
    inode = (await anyio.Path(commented).stat()).st_ino
    result = await run_cli(commented, "config", *argv, "--no-reload")
    assert result.code == EX_CONFIG
    assert named in result.err
    assert "nothing was written" in result.err or argv[1] == "server"
    assert await anyio.Path(commented).read_bytes() == before
    assert (await anyio.Path(commented).stat()).st_ino == inode
    assert [p.name for p in commented.parent.iterdir()] == [commented.name]


async def test_an_env_override_does_not_hide_an_invalid_value_in_the_file(
    run_cli: RunCli, commented: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIVEN_SERVER__PORT", "9000")
    before = await anyio.Path(commented).read_bytes()
    result = await run_cli(commented, "config", "set", "server.port", "eighty")
    assert result.code == EX_CONFIG
    assert await anyio.Path(commented).read_bytes() == before
    result = await run_cli(commented, "config", "set", "server.port", "9100", "--no-reload")
    assert result.code == 0
    assert "RIVEN_SERVER__PORT" in result.err  # the override is pointed out


async def test_an_env_override_is_never_written_into_the_file(
    run_cli: RunCli, commented: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIVEN_SERVER__PORT", "9000")
    result = await run_cli(commented, "config", "set", "server.port", "8000", "--no-reload")
    assert result.code == 0
    text = await anyio.Path(commented).read_text()
    assert tomllib.loads(text)["server"]["port"] == 8000


async def test_concurrent_sets_all_land_and_never_corrupt_the_file(
    run_cli: RunCli, commented: Path
) -> None:
    keys = [f"scraping.timeouts_s.scraper{n}" for n in range(12)]
    results = await asyncio.gather(*(
        run_cli(commented, "config", "set", key, str(n + 1), "--no-reload")
        for n, key in enumerate(keys)
    ))
    assert all(r.code == 0 for r in results)
    data = tomllib.loads(await text_of(commented))
    assert data["scraping"]["timeouts_s"] == {f"scraper{n}": n + 1 for n in range(12)}
    assert "# the port" in await text_of(commented)


def test_concurrent_processes_setting_keys_never_corrupt_the_file(commented: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from riven_async.commands import config_file\n"
        "path, name = Path(sys.argv[1]), sys.argv[2]\n"
        "for n in range(1, 11):\n"
        "    config_file.set_value(path, f'scraping.timeouts_s.{name}', str(n))\n"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script, str(commented), f"p{n}"],
                         stderr=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
    data = tomllib.loads(commented.read_text(encoding="utf-8"))
    assert data["scraping"]["timeouts_s"] == {f"p{n}": 10 for n in range(4)}
    assert load_settings(commented).server.port == 8787
    assert sorted(p.name for p in commented.parent.iterdir()) == [commented.name]


async def test_init_writes_0600_and_never_overwrites_without_force(
    run_cli: RunCli, tmp_path: Path
) -> None:
    path = tmp_path / "sub" / "config.toml"
    result = await run_cli(path, "config", "init")
    assert result.code == 0, result.err
    assert path.stat().st_mode & 0o777 == 0o600
    settings = load_settings(path)
    key = settings.server.api_key.get_secret_value()
    assert len(key) >= 32
    assert key not in result.out + result.err
    # Every comment of the shipped example is there.
    example_comments = [ln for ln in example_config_text().splitlines() if ln.startswith("#")]
    text = await text_of(path)
    assert all(line in text for line in example_comments)

    again = await run_cli(path, "config", "init")
    assert again.code == 1
    assert "--force" in again.err
    assert load_settings(path).server.api_key.get_secret_value() == key

    path.chmod(0o644)
    forced = await run_cli(path, "config", "init", "--force")
    assert forced.code == 0
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_settings(path).server.api_key.get_secret_value() != key


async def test_set_keeps_the_files_permissions(run_cli: RunCli, commented: Path) -> None:
    await anyio.Path(commented).chmod(0o640)
    result = await run_cli(commented, "config", "set", "server.port", "9001", "--no-reload")
    assert result.code == 0
    assert (await anyio.Path(commented).stat()).st_mode & 0o777 == 0o640


async def test_a_symlinked_config_is_edited_where_it_lives(
    run_cli: RunCli, commented: Path, tmp_path: Path
) -> None:
    link = tmp_path / "link.toml"
    link.symlink_to(commented)
    result = await run_cli(link, "config", "set", "server.port", "9002", "--no-reload")
    assert result.code == 0
    assert link.is_symlink()
    assert load_settings(commented).server.port == 9002


async def test_set_reads_a_secret_from_stdin(
    run_cli: RunCli, commented: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("from-stdin-key\n"))
    result = await run_cli(commented, "config", "set", "upstreams.realdebrid.api_key", "-",
                           "--no-reload")
    assert result.code == 0
    assert "from-stdin-key" not in result.out + result.err
    settings = load_settings(commented)
    assert settings.upstreams.realdebrid.api_key.get_secret_value() == "from-stdin-key"


async def test_unset_restores_the_default_and_is_a_no_op_the_second_time(
    run_cli: RunCli, commented: Path
) -> None:
    first = await run_cli(commented, "config", "unset", "server.port", "--no-reload")
    assert first.code == 0
    assert load_settings(commented).server.port == 8787
    assert "port =" not in await text_of(commented)
    assert "# the port" not in await text_of(commented)
    before = await anyio.Path(commented).read_bytes()
    second = await run_cli(commented, "config", "unset", "server.port", "--no-reload")
    assert second.code == 0
    assert "not in the file" in second.out
    assert await anyio.Path(commented).read_bytes() == before


async def test_unset_removes_a_misspelt_key_that_made_the_file_invalid(
    run_cli: RunCli, commented: Path
) -> None:
    await anyio.Path(commented).write_text(
        COMMENTED.replace("[ranking]", "[ranking]\nresolution = 1"))
    assert (await run_cli(commented, "config", "validate")).code == EX_CONFIG
    result = await run_cli(commented, "config", "unset", "ranking.resolution", "--no-reload")
    assert result.code == 0, result.err
    assert await text_of(commented) == COMMENTED
    assert (await run_cli(commented, "config", "validate")).code == 0


async def test_show_and_get_mask_secrets_unless_revealed(run_cli: RunCli, commented: Path) -> None:
    shown = await run_cli(commented, "config", "show")
    assert shown.code == 0
    assert "KEY-0123456789" not in shown.out
    assert tomllib.loads(shown.out)["server"]["port"] == 8787
    as_json = (await run_cli(commented, "config", "show", "--json")).json()
    assert as_json["server"]["api_key"] == "********"
    assert as_json["upstreams"]["tmdb"]["rate_limits"] == ["40/1s"]

    masked = await run_cli(commented, "config", "get", "server.api_key")
    assert masked.out.strip() == "********"
    revealed = await run_cli(commented, "config", "get", "server.api_key", "--reveal")
    assert revealed.out.strip() == "KEY-0123456789"
    section = await run_cli(commented, "config", "get", "upstreams.realdebrid")
    assert tomllib.loads(section.out)["upstreams"]["realdebrid"]["enabled"] is False
    got = (await run_cli(commented, "config", "get", "ranking.resolutions", "--json")).json()
    assert got == {"key": "ranking.resolutions", "value": ["1080p", "720p"]}
    unknown = await run_cli(commented, "config", "get", "server.nope")
    assert unknown.code == EX_CONFIG
    assert "server.nope" in unknown.err


async def test_validate_path_and_a_missing_file(run_cli: RunCli, tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.toml")
    ok = await run_cli(path, "config", "validate", "--json")
    assert ok.json() == {"path": str(path), "valid": True}
    assert (await run_cli(path, "check-config")).code == 0
    assert (await run_cli(path, "config", "path")).out.strip() == str(path)

    missing = tmp_path / "missing.toml"
    result = await run_cli(missing, "config", "set", "server.port", "1")
    assert result.code == EX_CONFIG
    assert "config init" in result.err
    assert not missing.exists()
    where = (await run_cli(missing, "config", "path", "--json")).json()
    assert where == {"path": str(missing), "exists": False}


def test_a_broken_file_is_reported_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[server]\nport = = 1\napi_key = "k"\n')
    with pytest.raises(ConfigError, match="line 2"):
        config_file.set_value(path, "server.port", "2")


_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                max_size=40)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_TEXT)
def test_any_string_value_round_trips_or_changes_nothing(tmp_path: Path, value: str) -> None:
    path = write_config(tmp_path / f"c{abs(hash(value))}.toml")
    before = path.read_bytes()
    try:
        config_file.set_value(path, "indexer.language", value)
    except ConfigError:  # only validation may refuse, and then nothing changed
        assert path.read_bytes() == before
        return
    settings_ = load_settings(path)
    # TOML string syntax ("quoted", 'literal') is read as TOML; anything else as it is.
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = None
    expected = parsed if isinstance(parsed, str) else value
    assert settings_.indexer.language == expected
    assert settings_.server.api_key.get_secret_value() == TEST_API_KEY
    os.unlink(path)


async def test_set_with_the_daemon_running_reloads_it_through_the_api(
    run_cli: RunCli, running_daemon: RunningDaemon
) -> None:
    live = running_daemon.app[keys.SETTINGS]
    result = await run_cli(running_daemon.config, "config", "set", "server.slow_request_s",
                           "3.5")
    assert result.code == 0, result.err
    assert "the daemon reloaded its config (generation 1)" in result.err
    assert live.generation == 1
    assert live.current.server.slow_request_s == 3.5
    refused = await run_cli(running_daemon.config, "config", "set", "server.slow_request_s",
                            "-1")
    assert refused.code == EX_CONFIG
    assert live.generation == 1  # nothing written, nothing reloaded


async def test_set_signals_a_daemon_whose_api_is_not_reachable(
    run_cli: RunCli, tmp_path: Path
) -> None:
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGHUP, lambda *a: print('hup', flush=True))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, "riven-async", "run", stdout=asyncio.subprocess.PIPE)
    try:
        assert daemon.stdout is not None
        assert await daemon.stdout.readline() == b"ready\n"
        pid_file = tmp_path / "riven.pid"
        await anyio.Path(pid_file).write_text(f"{daemon.pid}\n")
        config = write_config(tmp_path / "config.toml", port=free_port(),
                              server_extra=f'pid_file = "{pid_file}"\n')
        result = await run_cli(config, "config", "set", "logging.level", "DEBUG")
        assert result.code == 0, result.err
        assert f"sent SIGHUP to the daemon (pid {daemon.pid})" in result.err
        async with asyncio.timeout(10):
            assert await daemon.stdout.readline() == b"hup\n"
    finally:
        daemon.kill()
        await daemon.wait()


async def test_show_masks_a_debrid_key_inside_a_stremio_addon_url(
    run_cli: RunCli, tmp_path: Path
) -> None:
    segment = "realdebrid=RDKEY0123456789ABCDEF"
    config = write_config(tmp_path / "config.toml", extra=(
        f'\n[upstreams.torrentio]\nbase_url = "http://127.0.0.1:7000/{segment}"\n'))
    shown = await run_cli(config, "config", "show")
    got = await run_cli(config, "config", "get", "upstreams.torrentio.base_url")
    assert "RDKEY0123456789ABCDEF" not in shown.out + got.out
    assert got.out.strip() == "http://127.0.0.1:7000/********"
    revealed = await run_cli(config, "config", "get", "upstreams.torrentio.base_url",
                             "--reveal")
    assert segment in revealed.out


async def test_migrate_applies_nothing_on_a_migrated_database(
    run_cli: RunCli, stopped_daemon_config: Path
) -> None:
    result = await run_cli(stopped_daemon_config, "migrate", "--json")
    assert result.code == 0, result.err
    assert result.json() == {"applied": []}


async def test_options_go_before_or_after_the_command(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.toml")
    out = io.StringIO()
    code = await execute(["--json", "--config", str(path), "config", "validate"],
                         Output(json_mode=True, stdout=out, stderr=io.StringIO()))
    assert code == 0
    assert orjson.loads(out.getvalue()) == {"path": str(path), "valid": True}


def test_the_console_script_exits_78_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[server]\nport = 1\n", encoding="utf-8")  # no api_key
    result = subprocess.run(
        [sys.executable, "-m", "riven_async", "config", "validate", "--config", str(path)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == EX_CONFIG
    assert "server.api_key" in result.stderr
    assert "Traceback" not in result.stderr
