"""Fixtures shared by the whole suite."""

from __future__ import annotations

import eventkit  # noqa: F401 - see below
import pytest

from trader.config import mmr_env_vars

# ib_async's eventkit asks for "the current event loop" when it is first imported; after any test's asyncio.run()
# there is none in the main thread, so a later test's first `import ib_async` raised RuntimeError (test files
# share a worker process under xdist). Importing it once here, before any test runs, keeps the order irrelevant.


@pytest.fixture(scope="session")
def _own_cache_dir(tmp_path_factory):
    """Derived files (exchange sessions …) go to a cache of the test session's own, never the user's."""
    return tmp_path_factory.mktemp("mmr_cache")


@pytest.fixture(autouse=True)
def _clean_mmr_environment(monkeypatch, _own_cache_dir):
    """Every test starts without the caller's MMR settings (BROKER, MMR_ROLE, ports, keys …): the list comes
    from the config's own override table, so a new key is cleared too. Only the session's cache dir is set."""
    for name in mmr_env_vars():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MMR_CACHE_DIR", str(_own_cache_dir))


@pytest.fixture
def mmr_home(tmp_path, monkeypatch):
    """An isolated MMR_HOME for one test (config, data, logs, run files)."""
    home = tmp_path / "mmr_home"
    monkeypatch.setenv("MMR_HOME", str(home))
    monkeypatch.delenv("TRADER_CONFIG", raising=False)
    return home
