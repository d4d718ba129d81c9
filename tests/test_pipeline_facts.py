"""trader_service's market facts for proposals (`trader.pipeline.BrokerFacts`): a contract's daily bars are read
once a day, and their ATR and ADV (the sizer's inputs) computed once per day's bars."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from trader import pipeline
from trader.pipeline import BrokerFacts
from trader.trading import sizing


class _Objects:
    """The object store's daily bars, per conId; counts reads."""

    def __init__(self, bars: dict[str, list[dict[str, float]]]) -> None:
        self.bars, self.reads = bars, 0

    def get(self, key: str):
        self.reads += 1
        return self.bars.get(key.split(":")[1])


def _bars(n: int, base: float, width: float = 3.0) -> list[dict[str, float]]:
    return [{"open": base + i, "high": base + i + width - 1, "low": base + i - 1, "close": base + i + 0.5,
             "volume": 1000.0 * (i + 1)} for i in range(n)]


def test_atr_and_adv_once_per_days_bars(monkeypatch) -> None:
    objects = _Objects({"1": _bars(30, 100.0), "2": _bars(30, 50.0, 5.0), "3": _bars(1, 10.0)})
    facts = BrokerFacts(None, None, objects, None, None, None)
    computed: list[int] = []
    real_atr = sizing.wilder_atr
    monkeypatch.setattr(sizing, "wilder_atr", lambda h, lo, c, *a: computed.append(len(c)) or real_atr(h, lo, c, *a))
    days = iter([datetime(2026, 1, 5, tzinfo=UTC)] * 8 + [datetime(2026, 1, 6, tzinfo=UTC)] * 10)

    class _Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return next(days)

    monkeypatch.setattr(pipeline, "datetime", _Clock)

    async def calls(con_ids: tuple[int, ...]) -> list:
        return [await facts.atr_adv({"con_id": c}) for c in con_ids]

    out = asyncio.run(calls((1, 1, 2, 3)))
    bars = objects.bars["1"]
    expected = (real_atr([b["high"] for b in bars], [b["low"] for b in bars], [b["close"] for b in bars]),
                sizing.average_daily_volume([b["volume"] for b in bars]))
    assert out[0] == out[1] == expected and out[2] != expected and out[3] == (None, None)  # 1 bar: no ATR
    assert computed == [30, 30] and objects.reads == 3  # once per contract and day, for the bars and the ATR
    # The next day (the first call after midnight): the bars are read again and their ATR computed again.
    assert asyncio.run(calls((1, 2, 1, 3))) == [out[0], out[2], out[0], out[3]]
    assert computed == [30, 30, 30, 30] and objects.reads == 6
    assert set(facts._atr_adv) == {"bars1d:1:2026-01-06", "bars1d:2:2026-01-06", "bars1d:3:2026-01-06"}


def test_a_batch_reads_a_contracts_daily_bars_once() -> None:
    """The checks of one batch that miss the cache wait for one read of a contract's bars (not one each)."""
    import threading

    from trader.trading.quote_scope import shared_reads

    gate = threading.Event()

    class _Slow(_Objects):
        def get(self, key: str):
            gate.wait(5)  # every check asks before the first read answers
            return super().get(key)

    objects = _Slow({"1": _bars(30, 100.0), "2": _bars(30, 50.0)})
    facts = BrokerFacts(None, None, objects, None, None, None)

    async def main() -> list:
        with shared_reads():
            reads = [asyncio.ensure_future(facts.daily_bars({"con_id": c})) for c in (1, 2, 1, 1, 2)]
            await asyncio.sleep(0.05)
            gate.set()
            return await asyncio.gather(*reads)

    out = asyncio.run(main())
    assert objects.reads == 2 and out[0] is out[2] is out[3] and out[1] is out[4] and out[0] == objects.bars["1"]
    facts._daily.clear()

    async def unscoped() -> None:  # outside a batch: each read is its own
        await asyncio.gather(facts.daily_bars({"con_id": 1}), facts.daily_bars({"con_id": 1}))

    asyncio.run(unscoped())
    assert objects.reads == 4
    asyncio.run(facts.daily_bars({"con_id": 1}))
    assert objects.reads == 4  # then the bars are in memory for the day


def test_a_batch_values_the_book_once_for_every_what_if(monkeypatch) -> None:
    """Every proposal's what-if compares the book with and without it: the book's report (and each held symbol's
    returns) is computed once per batch, each trade's delta from it (`what_if_delta`, no report after it), and
    each what-if is what it is alone."""
    from trader.trading import portfolio_risk as pr
    from trader.trading.models import AccountSnapshot, Action, Position
    from trader.trading.proposals import Proposal
    from trader.trading.quote_scope import shared_reads

    book = [Position(symbol=s, quantity=q, avg_cost=10.0, market_price=10.0 + i, con_id=i + 1)
            for i, (s, q) in enumerate([("AAA", 500.0), ("BBB", -300.0), ("CCC", 800.0)])]
    con_ids = {"AAA": 1, "BBB": 2, "CCC": 3, "DDD": 4}

    class _Broker:
        resolves = 0

        def positions(self):
            return list(book)

        def account(self):
            return AccountSnapshot(net_liquidation=100_000.0)

        async def resolve(self, symbol, *a):
            _Broker.resolves += 1
            return {"con_id": con_ids[symbol]}

    class _Session:
        def require_ready(self, *, opening):
            pass

    async def no_groups():
        return []

    objects = _Objects({str(c): _bars(40, 20.0 * c, 1.0 + c) for c in con_ids.values()})
    facts = BrokerFacts(_Broker(), _Session(), objects, None, None, None, groups_list=no_groups)
    reports: list[int] = []
    real = pr._portfolio_risk  # every report is computed here (a what-if's "after" is not a report any more)
    monkeypatch.setattr(pr, "_portfolio_risk", lambda positions, *a: reports.append(len(positions)) or real(positions, *a))
    now = datetime(2026, 1, 5, 15, tzinfo=UTC)
    trades = [Proposal(id=0, symbol=s, action=a, created_at=now, quantity=q)
              for s, a, q in [("AAA", Action.SELL, 100.0), ("DDD", Action.BUY, 50.0), ("CCC", Action.BUY, 10.0),
                              ("DDD", Action.SELL, 20.0)]]

    async def alone() -> list:
        return [await facts.what_if(p, 25.0) for p in trades]

    async def batch() -> list:
        with shared_reads():
            return list(await asyncio.gather(*(facts.what_if(p, 25.0) for p in trades)))

    expected = asyncio.run(alone())
    assert reports == [3] * 4  # each: the book
    assert _Broker.resolves == 4  # each symbol's returns computed once, then the day's are kept
    reports.clear()
    _Broker.resolves = 0
    facts = BrokerFacts(_Broker(), _Session(), objects, None, None, None, groups_list=no_groups)  # nothing kept
    assert asyncio.run(batch()) == expected
    assert reports == [3] and _Broker.resolves == 4  # the book once; each symbol's returns once
    assert expected[1]["changes"]["DDD_weight_pct"]["after"] > 0 and expected[0]["changes"]["AAA_weight_pct"]["delta"] < 0
    book.append(Position(symbol="DDD", quantity=1.0, avg_cost=10.0, market_price=10.0, con_id=4))
    reports.clear()
    asyncio.run(batch())  # another batch, another book: valued again
    assert reports == [4]


def test_the_books_correlation_structure_is_kept_while_its_returns_are_the_same_objects() -> None:
    """Across batches the book's correlation structure is reused while each symbol's returns are the same (the
    day's) objects, and computed again as soon as one symbol's returns are another object or the list changes."""
    from trader.trading.portfolio_risk import RiskThresholds, correlation_structure

    facts = BrokerFacts(None, None, None, None, None, None)
    day = {s: tuple(((k * (i + 3)) % 7 - 3) / 100 for k in range(40)) for i, s in enumerate(("AAA", "BBB", "CCC"))}
    t = RiskThresholds()
    first = facts.correlation_structure(("AAA", "BBB", "CCC"), dict(day), t)
    fresh = correlation_structure(("AAA", "BBB", "CCC"), day, t)
    assert first.kept == fresh.kept == ("AAA", "BBB", "CCC") and first.components == fresh.components
    assert (first.corr == fresh.corr).all()
    assert facts.correlation_structure(("AAA", "BBB", "CCC"), dict(day), t) is first  # a new dict, same objects
    changed = dict(day, BBB=tuple(day["BBB"][1:]) + (0.0,))  # one symbol's returns are another object
    again = facts.correlation_structure(("AAA", "BBB", "CCC"), changed, t)
    assert again is not first and again.kept == first.kept and not (again.corr == first.corr).all()
    assert facts.correlation_structure(("AAA", "BBB"), dict(day), t).kept == ("AAA", "BBB")  # another book
