"""One fixture that starts the platform's processes on free ports in a temp MMR_HOME, and stops them."""

from __future__ import annotations

import pytest

from trader.testing import Platform, platform_env


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """The three services running on free ports in a temp MMR_HOME (shared by a test module)."""
    home = tmp_path_factory.mktemp("mmr_home")
    plat = Platform(home, platform_env(home))
    try:
        plat.start()
        yield plat
    finally:
        plat.stop()


@pytest.fixture(scope="module")
def plat(tmp_path_factory):
    """The simulated gateway + the three services, broker connected and reconciled (shared by a test module)."""
    home = tmp_path_factory.mktemp("mmr_trading")
    p = Platform(home, platform_env(home), with_gateway=True)
    try:
        p.start()
        p.wait_broker_ready()
        yield p
    finally:
        p.stop()
