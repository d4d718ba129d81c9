"""Fixtures for the store tests: a temp data dir and child processes that are always cleaned up."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WORKER = Path(__file__).with_name("_store_worker.py")


class Workers:
    """Starts ``_store_worker.py`` children and kills any still running at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, **config: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    @staticmethod
    def expect_line(proc: subprocess.Popen[str], expected: str) -> None:
        """Block until the child prints `expected` (it fails loudly if the child dies first)."""
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != expected:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"worker said {line!r} instead of {expected!r}; stderr:\n{err}")

    @staticmethod
    def result(proc: subprocess.Popen[str], timeout: float = 60) -> dict:
        """Wait for the child to exit cleanly and return its JSON result (its last stdout line)."""
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"worker exited {proc.returncode}; stderr:\n{err}"
        return json.loads(out.strip().splitlines()[-1])

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)


@pytest.fixture
def workers() -> Iterator[Workers]:
    w = Workers()
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
