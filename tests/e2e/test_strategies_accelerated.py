"""Live strategies on the simulated gateway's accelerated clock: 1-minute bars close every second of wall time
(SIM_SPEED=60), built on the exchange's trade times, and the live signals equal the backtest's on those bars —
for a one-conId strategy and for a panel (pairs over two conIds)."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from trader.testing import cli_ok, running_platform

AAPL = 265598
MSFT = 272093
EXAMPLES = Path(__file__).resolve().parents[2] / "strategies"


def test_one_minute_bars_on_an_accelerated_clock(tmp_path: Path) -> None:
    strats = tmp_path / "strats"
    strats.mkdir()
    for name in ("ma_crossover.py", "pairs_zscore.py"):
        (strats / name).write_text((EXAMPLES / name).read_text())
    with running_platform(tmp_path, with_gateway=True, broker_ready=True, STRATEGIES_DIRECTORY=str(strats),
                          STRATEGY_RECONCILE_SECONDS="2", SIM_SPEED="60") as p:
        cli_ok(p, "strategies", "deploy", "ma", "--module", "ma_crossover.py", "--conids", str(AAPL),
             "--bar-size", "1 min", "--params", '{"FAST": 2, "SLOW": 3}')
        cli_ok(p, "strategies", "deploy", "pairs", "--module", "pairs_zscore.py", "--conids", f"{AAPL},{MSFT}",
             "--bar-size", "1 min", "--params", '{"LOOKBACK": 4, "ENTRY_Z": 1.0, "EXIT_Z": 0.5}')
        deadline = time.monotonic() + 90  # 1-minute bars in at most 1.5 minutes: the clock runs faster
        while time.monotonic() < deadline:
            rows = {r["name"]: r for r in cli_ok(p, "strategies")}
            if rows.get("ma", {}).get("bars", 0) >= 8 and rows.get("pairs", {}).get("bars", 0) >= 2 * 16:
                break
            time.sleep(0.5)
        assert rows["ma"]["state"] == "RUNNING" and rows["ma"]["bars"] >= 8, rows
        assert rows["pairs"]["state"] == "RUNNING" and set(rows["pairs"]["targets"]) == {str(AAPL), str(MSFT)}
        with p.client("strategy_service", timeout=10) as c:
            frame = c.call("strategy_bars", "ma", AAPL)
            frames = {con_id: c.call("strategy_bars", "pairs", con_id) for con_id in (AAPL, MSFT)}
            details = c.rpc().status().details  # as measured live: bars in -> signals published / proposals stored
        dispatch, propose = details["dispatch_ms"], details["propose_ms"]
        assert dispatch["n"] >= 8 and 0 < dispatch["median"] <= dispatch["p99"]
        assert propose["n"] >= 1 and 0 < propose["median"] <= propose["p99"]
        with p.client("trader_service", timeout=10) as c:  # the same batches in trader_service: checks, store
            batches = c.rpc().status().details["propose_batch"]
        assert set(batches) == {"checks_ms", "store_ms"}
        assert all(b["n"] >= propose["n"] and 0 < b["median"] <= b["p99"] for b in batches.values())
        steps = {b - a for a, b in zip(frame.index[:-1], frame.index[1:], strict=True)}
        assert steps and min(steps) >= timedelta(minutes=1) and set(frame.index.second) == {0}  # sim minutes
        from trader.strategy.dispatch import backtest_signals
        from trader.strategy.loader import load_strategy_class

        live = [(s["bar_time"], s["action"]) for s in
                reversed(cli_ok(p, "strategies", "signals", "ma", "--limit", "1000")["signals"])]
        cls = load_strategy_class(strats, "ma_crossover.py")
        expected = [(t.isoformat(), a) for t, a in backtest_signals(cls().with_params(FAST=2, SLOW=3), frame)]
        last = frame.index[-1].isoformat()
        assert expected and [x for x in live if x[0] <= last] == expected
        assert datetime.fromisoformat(last) > datetime.fromisoformat(frame.index[0].isoformat()) + \
            timedelta(minutes=6)

        # the panel: every conId's bars up to the older of the two last bars, backtested together
        from trader.strategy.dispatch import backtest_panel_signals

        pairs = load_strategy_class(strats, "pairs_zscore.py")
        upto = min(f.index[-1] for f in frames.values())
        cut = {c: f[f.index <= upto] for c, f in frames.items()}
        expected = [(t.isoformat(), c, a) for t, c, a in backtest_panel_signals(
            pairs().with_params(LOOKBACK=4, ENTRY_Z=1.0, EXIT_Z=0.5), cut)]
        live = [(s["bar_time"], s["con_id"], s["action"]) for s in
                reversed(cli_ok(p, "strategies", "signals", "pairs", "--limit", "1000")["signals"])]
        assert expected and [x for x in live if x[0] <= upto.isoformat()] == expected

        # every proposal the signals made (propose_batch) is in the audit trail, recorded after the answer went out
        with p.client("trader_service", timeout=10) as c:
            made = {r["id"] for r in c.call("proposals", all_states=True, limit=10_000)}
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                audited = {e["payload"]["id"] for e in c.call("events", kind="proposal_created", limit=10_000)}
                if made <= audited:
                    break
                time.sleep(0.2)
        assert made and made <= audited, (made, audited)

        # a malformed batch is refused by trader_service, naming what it wants
        with p.client("trader_service", timeout=10) as c, pytest.raises(Exception) as refused:
            c.call("propose_batch", [{"symbol": "AAPL"}])
        assert "symbol and action" in str(refused.value)

