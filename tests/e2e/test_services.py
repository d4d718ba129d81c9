"""The three services really start, answer ping/status, and stop cleanly."""

from __future__ import annotations

import json

from trader.objects import ServiceStatus
from trader.testing import SERVICES, Platform, mmr, platform_env


def test_every_service_answers_status(platform):
    for name in SERVICES:
        with platform.client(name) as client:
            assert client.rpc().ping() == "pong"
            st = client.rpc().status()
        assert isinstance(st, ServiceStatus)
        assert st.service == name
        assert st.pid == platform.procs[name].pid
        assert st.uptime_seconds >= 0
        assert st.version
        assert st.endpoints["rpc"] == platform.endpoint(name)


def test_trader_service_reports_broker_state(platform):
    with platform.client("trader_service") as client:
        st = client.rpc().status()
    assert st.details["broker"]["state"] in ("not connected", "connecting") and st.details["broker"]["ready"] is False
    assert st.details["broker"]["kind"] == "sim"
    assert st.endpoints["pub"].endswith(platform.env["TRADER_PUB_PORT"])


def test_unknown_rpc_method_is_an_error_not_a_crash(platform):
    with platform.client("data_service") as client:
        try:
            client.call("no_such_method")
        except Exception as exc:  # noqa: BLE001 - any error type is fine; the service must survive
            assert "no_such_method" in str(exc)
        else:
            raise AssertionError("calling an unknown method must fail")
        assert client.rpc().ping() == "pong"


def test_services_stop_cleanly_on_sigterm(tmp_path):
    plat = Platform(tmp_path, platform_env(tmp_path))
    plat.start()
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.glob("*.pid")) == sorted(f"{s}.pid" for s in SERVICES)
    codes = plat.stop()
    assert codes == {s: 0 for s in SERVICES}
    assert list(run_dir.glob("*.pid")) == []
    # and the CLI now sees every service down
    doc = json.loads(mmr(plat.env, "--json", "status").stdout)
    assert doc["all_up"] is False
