from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "systemd" / "riven-async.service"


def unit_lines() -> set[str]:
    return {line.strip() for line in UNIT.read_text().splitlines() if "=" in line}


@pytest.mark.parametrize(
    "line",
    [
        "Type=notify",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "ProtectHome=true",
        "PrivateTmp=true",
        "User=riven",
    ],
)
def test_unit_has_the_required_setting(line: str) -> None:
    assert line in unit_lines()


def test_unit_has_a_watchdog_and_read_write_paths() -> None:
    text = UNIT.read_text()
    assert "WatchdogSec=" in text
    assert "ReadWritePaths=" in text
    assert "LoadCredential=" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # Point ExecStart at an executable that exists here; verify checks that it does.
    exe = Path(sys.executable).with_name("riven-async")
    text = UNIT.read_text().replace("/opt/riven-async/.venv/bin/riven-async", str(exe))
    unit = tmp_path / "riven-async.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "riven-async.service" not in result.stderr, result.stderr
