"""Fixtures shared by the whole suite."""

from __future__ import annotations

import socket

import pytest


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mmr_home(tmp_path, monkeypatch):
    """An isolated MMR_HOME for one test (config, data, logs, run files)."""
    home = tmp_path / "mmr_home"
    monkeypatch.setenv("MMR_HOME", str(home))
    monkeypatch.delenv("TRADER_CONFIG", raising=False)
    return home
