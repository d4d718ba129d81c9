"""One fixture that starts the platform's processes on free ports in a temp MMR_HOME, and stops them."""

from __future__ import annotations

import pytest

from trader.testing import running_platform


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """The three services running on free ports in a temp MMR_HOME (shared by a test module)."""
    with running_platform(tmp_path_factory.mktemp("mmr_home")) as p:
        yield p


@pytest.fixture(scope="module")
def plat(tmp_path_factory):
    """The simulated gateway + the three services, broker connected and reconciled (shared by a test module)."""
    with running_platform(tmp_path_factory.mktemp("mmr_trading"), with_gateway=True, broker_ready=True) as p:
        yield p
