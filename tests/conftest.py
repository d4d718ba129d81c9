"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest


@pytest.fixture
def mmr_home(tmp_path, monkeypatch):
    """An isolated MMR_HOME for one test (config, data, logs, run files)."""
    home = tmp_path / "mmr_home"
    monkeypatch.setenv("MMR_HOME", str(home))
    monkeypatch.delenv("TRADER_CONFIG", raising=False)
    return home
