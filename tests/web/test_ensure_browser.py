"""scripts/ensure_browser.sh (run by run_tests.sh): quiet when Chromium is there, a clear hint when it cannot
install it. (The install itself, apt-get as root, is what CI runs; here the machine already has the browser.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ensure_browser.sh"


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("bash") or "/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def test_present_browser_is_left_alone(tmp_path):
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    res = _run({"PATH": os.environ["PATH"], "MMR_CHROMIUM": str(fake)})
    assert res.returncode == 0 and res.stderr == ""


def test_without_apt_get_or_root_it_says_how_and_does_not_stop_the_suite(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("id",):  # no apt-get, no sudo on this PATH
        (bin_dir / tool).symlink_to(shutil.which(tool))
    res = _run({"PATH": str(bin_dir), "MMR_CHROMIUM": str(tmp_path / "missing")})
    assert res.returncode == 0
    root = os.geteuid() == 0
    assert ("no apt-get" if root else "needs root") in res.stderr and "tests/web will fail" in res.stderr
