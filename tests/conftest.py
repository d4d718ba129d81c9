"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest

from trader.config import mmr_env_vars


@pytest.fixture(autouse=True)
def _clean_mmr_environment(monkeypatch):
    """Every test starts without the caller's MMR settings (BROKER, MMR_ROLE, ports, keys …): the list comes
    from the config's own override table, so a new key is cleared too."""
    for name in mmr_env_vars():
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mmr_home(tmp_path, monkeypatch):
    """An isolated MMR_HOME for one test (config, data, logs, run files)."""
    home = tmp_path / "mmr_home"
    monkeypatch.setenv("MMR_HOME", str(home))
    monkeypatch.delenv("TRADER_CONFIG", raising=False)
    return home
