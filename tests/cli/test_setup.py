"""`mmr setup`: the wizard with scripted answers (prompt_toolkit pipe input) and with flags, each validation
failure, the paper/live switch, and `status` showing the mode — all in a temp MMR_HOME."""

from __future__ import annotations

import contextlib
import io
import json
import socket
from pathlib import Path

import httpx
import pytest

from trader.cli.core import AppContext
from trader.config import TraderConfig, load_trader_config, mmr_paths
from trader.strategy.guards import is_live_account


@pytest.fixture(autouse=True)
def _home(mmr_home):
    return mmr_home


@pytest.fixture
def gateway_port():
    """A port that accepts connections (stands in for IB Gateway's API port)."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        yield srv.getsockname()[1]


def run(*args: str) -> tuple[int, dict]:
    from trader.mmr_cli import run as mmr_run

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = mmr_run(["--json", "setup", *args], AppContext(json=True))
    return code, json.loads(buf.getvalue())


def saved() -> TraderConfig:
    from trader.config import ensure_user_config

    paths = mmr_paths()
    ensure_user_config(paths)
    return load_trader_config(paths, env={"TRADER_CONFIG": str(paths.config_dir / "trader.yaml")})


def test_wizard_with_scripted_answers(gateway_port, mmr_home):
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from trader.cli.setup import run_setup

    answers = ["ib", "paper", "127.0.0.1", str(gateway_port), "du7654321", "", ""]
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("".join(a + "\r" for a in answers))
        doc = run_setup(AppContext(), {}, interactive=True)
    config = saved()
    assert (config.broker, config.ib_server_port, config.ib_account, config.trading_mode) == (
        "ib", gateway_port, "DU7654321", "paper")
    assert doc["mode"] == "paper" and doc["checks"] == {"ib_server_port": "reachable"}
    assert not is_live_account(config) or gateway_port not in (4002, 4004, 7497)
    # The shipped comments survive the edit.
    assert "# Real IB ports" in (mmr_home / "config" / "trader.yaml").read_text()


def test_flags_write_config_and_env_file_0600_without_printing_keys(gateway_port, mmr_home, tmp_path):
    env_file = tmp_path / ".env"
    code, doc = run("--broker", "ib", "--port", str(gateway_port), "--account", "DU1234567",
                    "--massive-key", "mk-secret-1", "--anthropic-key", "ak-secret-2", "--offline",
                    "--env-file", str(env_file))
    assert code == 0, doc
    assert "mk-secret-1" not in json.dumps(doc) and doc["massive_api_key"] == "set"
    config_file = Path(doc["config_file"])
    assert config_file.stat().st_mode & 0o777 == 0o600 and env_file.stat().st_mode & 0o777 == 0o600
    config = saved()
    assert config.massive_api_key == "mk-secret-1" and config.anthropic_api_key == "ak-secret-2"
    env = env_file.read_text()
    assert "IB_ACCOUNT='DU1234567'" in env and "IB_GATEWAY_API_PORT='4004'" in env and "TRADING_MODE='paper'" in env


@pytest.mark.parametrize(("args", "message"), [
    (["--account", "12345"], "not an IB account id"),
    (["--account", "U1234567"], "live account id: paper trading"),
    (["--account", "DU1234567", "--live", "--confirm-live", "DU1234567"], "paper account id: live trading"),
    (["--account", "U1234567", "--live"], "live trading not confirmed"),
    (["--account", "U1234567", "--live", "--confirm-live", "U7777777"], "live trading not confirmed"),
    ([], "an IB account id is needed"),
])
def test_each_validation_failure_writes_nothing(gateway_port, args, message):
    before = saved()
    code, doc = run("--broker", "ib", "--port", str(gateway_port), "--non-interactive", *args)
    assert code == 1 and doc["error"]["type"] == "SetupInvalid" and message in doc["error"]["message"], doc
    assert saved() == before


def test_unreachable_port_and_wrong_mode_port_are_refused(gateway_port):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    code, doc = run("--broker", "ib", "--port", str(closed), "--account", "DU1234567")
    assert code == 1 and "nothing accepts connections" in doc["error"]["message"]
    code, doc = run("--broker", "ib", "--port", "4001", "--account", "DU1234567", "--skip-port-check")
    assert code == 1 and "live port, not paper" in doc["error"]["message"]


def test_live_confirmed_tightens_defaults_and_status_shows_it(gateway_port):
    code, doc = run("--broker", "ib", "--port", str(gateway_port), "--account", "U1234567", "--live",
                    "--confirm-live", "u1234567")
    assert code == 0 and doc["mode"] == "live" and doc["approver_key_threshold_usd"] == 10_000
    config = saved()
    assert config.trading_mode == "live" and is_live_account(config)  # auto-execution of paper_only strategies off
    from trader.mmr_cli import run as mmr_run

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        mmr_run(["--json", "status", "--timeout", "0.2"], AppContext(json=True))
    assert json.loads(buf.getvalue())["mode"] == "live"
    # Back to paper with the paper account.
    code, doc = run("--paper", "--account", "DU1234567", "--port", str(gateway_port))
    assert code == 0 and saved().trading_mode == "paper"


def test_api_keys_checked_with_one_cheap_request():
    from trader.cli.setup import SetupInvalid, check_key

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        good = request.headers.get("x-api-key") == "good" or request.headers.get("authorization") == "Bearer good"
        return httpx.Response(200 if good else 401, json={})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    assert check_key("anthropic", "good", client=client) == "accepted"
    assert seen[-1].url.path == "/v1/models"
    with pytest.raises(SetupInvalid, match="massive_api_key: refused"):
        check_key("massive", "bad", "https://api.example.test", client=client)

    def offline(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no network")

    assert check_key("massive", "k", client=httpx.Client(transport=httpx.MockTransport(offline))) == \
        "unchecked (offline)"


def test_sim_stays_the_default_and_needs_no_setup():
    from trader.cli.setup import setup_needed

    assert load_trader_config(env={}).broker == "sim" and not setup_needed(load_trader_config(env={}))
    assert setup_needed(TraderConfig(broker="ib")) and not setup_needed(TraderConfig(broker="ib", ib_account="DU1"))
    code, doc = run("--broker", "sim", "--non-interactive")
    assert code == 0 and doc["mode"] == "sim" and doc["checks"] == {}


@pytest.mark.parametrize(("typed", "confirmed"), [("U7654321", True), ("", False), ("U1111111", False)])
def test_wizard_live_asks_for_the_account_id_typed_again(gateway_port, typed, confirmed):
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from trader.cli.setup import SetupInvalid, run_setup

    before = saved()
    answers = ["ib", "live", "127.0.0.1", str(gateway_port), "U7654321", typed, "", ""]
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("".join(a + "\r" for a in answers))
        if confirmed:
            doc = run_setup(AppContext(), {}, interactive=True)
        else:
            with pytest.raises(SetupInvalid, match="live trading not confirmed"):
                run_setup(AppContext(), {}, interactive=True)
    if confirmed:
        assert doc["mode"] == "live" and saved().trading_mode == "live" and saved().ib_account == "U7654321"
    else:
        assert saved() == before  # nothing written


def test_live_without_setup_still_needs_the_approver_key_above_10k():
    """Docker's TRADING_MODE=live (or a hand-edited trader.yaml) tightens as `setup --live` does."""
    from trader.strategy.guards import approver_key_threshold

    live = TraderConfig(broker="ib", trading_mode="live", ib_server_port=4003)
    assert approver_key_threshold(live) == 10_000
    assert approver_key_threshold(load_trader_config(env={"BROKER": "ib", "TRADING_MODE": "live"})) == 10_000
    assert approver_key_threshold(TraderConfig(broker="ib", trading_mode="live", approver_key_threshold_usd=50_000)) \
        == 50_000
    assert approver_key_threshold(TraderConfig(broker="ib", ib_server_port=4002)) is None  # paper: off unless set
    assert approver_key_threshold(TraderConfig(broker="sim", approver_key_threshold_usd=5_000)) == 5_000


def test_live_setup_generates_the_approver_key_into_env_file_never_printed(gateway_port, tmp_path):
    env_file = tmp_path / ".env"
    code, doc = run("--broker", "ib", "--port", str(gateway_port), "--account", "U1234567", "--live",
                    "--confirm-live", "U1234567", "--env-file", str(env_file))
    assert code == 0, doc
    from trader.cli.setup import env_file_value

    key = env_file_value(env_file, "MMR_APPROVER_KEY")
    assert len(key) >= 24 and key not in json.dumps(doc) and env_file.stat().st_mode & 0o777 == 0o600
    assert any("MMR_APPROVER_KEY" in n for n in doc["notes"])
    # A second run keeps the key; without --env-file the output says no key is set for trader_service.
    code, _ = run("--live", "--confirm-live", "U1234567", "--port", str(gateway_port), "--env-file", str(env_file))
    assert code == 0 and env_file_value(env_file, "MMR_APPROVER_KEY") == key
    code, doc = run("--live", "--confirm-live", "U1234567", "--port", str(gateway_port))
    assert code == 0 and any("refused until it is" in n for n in doc["notes"])


@pytest.mark.parametrize(("answers", "message"), [
    (["ibkr"], "broker: must be sim or ib"),
    (["ib", "demo"], "mode: must be paper or live"),
    (["ib", "paper", "127.0.0.1", "forty"], "is not a port number"),
    (["ib", "paper", "127.0.0.1", "70000"], "is not a port number"),
])
def test_wizard_answers_that_are_refused_write_nothing(answers, message):
    """The answers only the wizard can give wrong (flags are checked by click's choices and ranges)."""
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from trader.cli.setup import SetupInvalid, run_setup

    before = saved()
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("".join(a + "\r" for a in answers))
        with pytest.raises(SetupInvalid, match=message):
            run_setup(AppContext(), {}, interactive=True)
    assert saved() == before
