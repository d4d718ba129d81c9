"""The simulated gateway's option computation ticks (tick type 13, Ticker.modelGreeks): consistent with its
own option quotes and within tolerance of an independent Black-Scholes (vollib)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ib_async import Option

from trader.sim import testkit
from trader.sim.market_math import RISK_FREE_RATE
from trader.testing import run_async

analytical = pytest.importorskip("vollib.black_scholes.greeks.analytical")
vollib_bs = pytest.importorskip("vollib.black_scholes")


@run_async
async def test_model_greeks_snapshot_matches_an_independent_black_scholes(tmp_path):
    async with testkit.connected(tmp_path) as (gw, ib):
        opts = [c for c in gw.universe.find("AAPL", "OPT") if c.last_trade_date > gw.clock.now().strftime("%Y%m%d")]
        und = gw.market.quote(opts[0].underlying_con_id).last
        picks = [min((c for c in opts if c.right == r and c.last_trade_date == opts[-1].last_trade_date),
                     key=lambda c: abs(c.strike - und)) for r in ("C", "P")]
        contracts = [Option(conId=c.con_id, exchange="SMART") for c in picks]
        tickers = await ib.reqTickersAsync(*contracts)
        for c, t in zip(picks, tickers, strict=True):
            g = t.modelGreeks
            assert g is not None, c.local_symbol
            q = gw.market.quote(c.con_id)
            assert q.bid <= g.optPrice <= q.ask  # the model value sits inside its own quote
            expiry = datetime.strptime(c.last_trade_date, "%Y%m%d").replace(hour=21, tzinfo=UTC)
            years = (expiry - gw.clock.now()).total_seconds() / (365.25 * 86400)
            flag, s, k, v = c.right.lower(), g.undPrice, c.strike, g.impliedVol
            assert v == pytest.approx(c.volatility)
            ref = vollib_bs.black_scholes(flag, s, k, years, RISK_FREE_RATE, v)
            assert g.optPrice == pytest.approx(ref, rel=2e-3, abs=0.01)
            assert g.delta == pytest.approx(analytical.delta(flag, s, k, years, RISK_FREE_RATE, v), abs=2e-3)
            assert g.gamma == pytest.approx(analytical.gamma(flag, s, k, years, RISK_FREE_RATE, v), rel=1e-2)
            assert g.vega == pytest.approx(analytical.vega(flag, s, k, years, RISK_FREE_RATE, v), rel=1e-2)
            assert g.theta == pytest.approx(analytical.theta(flag, s, k, years, RISK_FREE_RATE, v), rel=2e-2)


@run_async
async def test_futures_option_greeks_are_black_76_on_the_future(tmp_path):
    black = pytest.importorskip("vollib.black")
    black_greeks = pytest.importorskip("vollib.black.greeks.analytical")
    async with testkit.connected(tmp_path) as (gw, ib):
        fops = [c for c in gw.universe.find("ES", "FOP") if c.last_trade_date > gw.clock.now().strftime("%Y%m%d")]
        fut = gw.market.quote(fops[0].underlying_con_id).last
        pick = min((c for c in fops if c.right == "P"), key=lambda c: abs(c.strike - fut))
        [t] = await ib.reqTickersAsync(Option(conId=pick.con_id, exchange="CME"))
        g = t.modelGreeks
        assert g is not None
        expiry = datetime.strptime(pick.last_trade_date, "%Y%m%d").replace(hour=21, tzinfo=UTC)
        years = (expiry - gw.clock.now()).total_seconds() / (365.25 * 86400)
        f, k, v = g.undPrice, pick.strike, g.impliedVol
        # the future is the forward: no second carry on top of its price
        assert g.optPrice == pytest.approx(black.black("p", f, k, years, RISK_FREE_RATE, v), rel=2e-3, abs=0.05)
        assert g.delta == pytest.approx(black_greeks.delta("p", f, k, years, RISK_FREE_RATE, v), abs=2e-3)
        assert g.gamma == pytest.approx(black_greeks.gamma("p", f, k, years, RISK_FREE_RATE, v), rel=1e-2)
        assert g.vega == pytest.approx(black_greeks.vega("p", f, k, years, RISK_FREE_RATE, v), rel=1e-2)
        assert g.theta == pytest.approx(black_greeks.theta("p", f, k, years, RISK_FREE_RATE, v), rel=2e-2)
