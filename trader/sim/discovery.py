"""What the simulated gateway discovers: scanner rankings from its own market, and a small deterministic news set.

Scanner (``reqScannerSubscription``): the universe's stocks (``STK``; ``ETF.US`` = the "Funds" industry,
``STK.US``/``STK.US.MAJOR`` = every US stock) ranked from their current quotes by the scan code:

- ``TOP_PERC_GAIN`` / ``TOP_PERC_LOSE``: change vs the previous close, best (worst) first;
- ``MOST_ACTIVE``: session volume; ``HOT_BY_VOLUME``: session volume / the contract's average daily volume;
- ``HOT_BY_PRICE``: |change|; ``HIGH_OPEN_GAP`` / ``LOW_OPEN_GAP``: open vs the previous close.

``abovePrice``/``belowPrice``/``aboveVolume`` filter first; ties break by symbol, so a ranking is reproducible.

News: three providers, and per stock and weekday (the last NEWS_DAYS + 2 calendar days) a headline written from
that day's move (so the news agrees with the market), one rotating company item, and an analyst action after
a move of 2% or more; on a news-jump day of the market model (trader/sim/factors.py) a headline that explains
the gap before the open. Article ids are ``<provider>$<conId>.<yyyymmdd>.<n>``:
an article is regenerated from its id, nothing is stored.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trader.sim.contracts import ContractUniverse
    from trader.sim.market import SimMarket
    from trader.sim.models import Quote, SimContract

SCAN_CODES = ("TOP_PERC_GAIN", "TOP_PERC_LOSE", "MOST_ACTIVE", "HOT_BY_VOLUME", "HOT_BY_PRICE",
              "HIGH_OPEN_GAP", "LOW_OPEN_GAP")
INSTRUMENTS = (("STK", "US Stocks"), ("ETF.US", "US ETFs"))
LOCATIONS = (("STK.US", "US Stocks"), ("STK.US.MAJOR", "US Major Exchanges"), ("STK.NASDAQ", "NASDAQ"),
             ("STK.NYSE", "NYSE"))
PROVIDERS = (("BRFG", "Briefing.com General Market Columns"), ("BRFUPDN", "Briefing.com Analyst Actions"),
             ("DJNL", "Dow Jones Newsletters"))
MAX_SCAN_ROWS = 50
NEWS_DAYS = 5


@dataclass(frozen=True, slots=True)
class ScanHit:
    """One scanner row: rank (0 = best) and the contract."""

    rank: int
    contract: SimContract
    value: float  # the number the scan ranked by (percent, shares or ratio)


def _change(q: Quote) -> float:
    return (q.last - q.close) / q.close * 100 if q.close else 0.0


def _gap(q: Quote) -> float:
    return (q.open - q.close) / q.close * 100 if q.close else 0.0


def _key(code: str, c: SimContract, q: Quote) -> float:
    """The value a scan code ranks by (larger is better)."""
    if code == "TOP_PERC_GAIN":
        return _change(q)
    if code == "TOP_PERC_LOSE":
        return -_change(q)
    if code == "MOST_ACTIVE":
        return q.volume
    if code == "HOT_BY_VOLUME":
        return q.volume / c.avg_volume if c.avg_volume else 0.0
    if code == "HOT_BY_PRICE":
        return abs(_change(q))
    if code == "HIGH_OPEN_GAP":
        return _gap(q)
    if code == "LOW_OPEN_GAP":
        return -_gap(q)
    raise ValueError(f"unknown scan code {code!r}; one of {', '.join(SCAN_CODES)}")


def _in_scope(c: SimContract, instrument: str, location: str) -> bool:
    if c.sec_type != "STK" or c.currency != "USD":
        return False
    if instrument.upper() == "ETF.US" and c.industry != "Funds":
        return False
    loc = location.upper()
    if loc in ("STK.NASDAQ", "STK.NYSE"):
        return c.primary_exchange.upper().startswith(loc.split(".")[1])
    return True


def scan(universe: ContractUniverse, market: SimMarket, code: str, *, instrument: str = "STK",
         location: str = "STK.US.MAJOR", rows: int = MAX_SCAN_ROWS, above_price: float | None = None,
         below_price: float | None = None, above_volume: float | None = None) -> list[ScanHit]:
    """The ranked scanner rows for ``code`` (ValueError for an unknown code)."""
    code = code.upper()
    if code not in SCAN_CODES:
        raise ValueError(f"unknown scan code {code!r}; one of {', '.join(SCAN_CODES)}")
    scored: list[tuple[float, str, SimContract]] = []
    for c in universe:
        if not _in_scope(c, instrument, location):
            continue
        q = market.quote(c.con_id)
        if above_price is not None and q.last <= above_price:
            continue
        if below_price is not None and q.last >= below_price:
            continue
        if above_volume is not None and q.volume <= above_volume:
            continue
        scored.append((_key(code, c, q), c.symbol, c))
    scored.sort(key=lambda t: (-t[0], t[1]))
    n = max(1, min(rows if rows and rows > 0 else MAX_SCAN_ROWS, MAX_SCAN_ROWS))
    return [ScanHit(i, c, v) for i, (v, _s, c) in enumerate(scored[:n])]


def scanner_parameters_xml() -> str:
    """A small ScanParameterResponse document in IB's shape (instrument list, location tree, scan types)."""
    inst = "".join(f"<Instrument><name>{n}</name><type>{t}</type></Instrument>" for t, n in INSTRUMENTS)
    locs = "".join(f"<Location><displayName>{n}</displayName><locationCode>{c}</locationCode></Location>"
                   for c, n in LOCATIONS)
    scans = "".join(f"<ScanType><displayName>{c.replace('_', ' ').title()}</displayName><scanCode>{c}</scanCode>"
                    f"<instruments>STK,ETF.US</instruments></ScanType>" for c in SCAN_CODES)
    return (f'<?xml version="1.0" encoding="UTF-8"?><ScanParameterResponse><InstrumentList>{inst}</InstrumentList>'
            f"<LocationTree>{locs}</LocationTree><ScanTypeList>{scans}</ScanTypeList></ScanParameterResponse>")


# --------------------------------------------------------------------------- news


@dataclass(frozen=True, slots=True)
class NewsItem:
    """One headline: when (UTC), provider, article id, headline."""

    time: datetime
    provider: str
    article_id: str
    headline: str


_COMPANY_ITEMS = (
    "{name} to present at an industry conference next week",
    "{name} announces quarterly dividend in line with the prior quarter",
    "{name} files its quarterly report; no changes to guidance",
    "Analyst reiterates Neutral rating on {symbol}",
)


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=4).digest(), "big")


def _move_headline(c: SimContract, change: float, volume_ratio: float) -> str:
    verb = "rises" if change > 0.05 else "falls" if change < -0.05 else "is little changed"
    amount = f" {abs(change):.1f}%" if verb != "is little changed" else ""
    tone = "in heavy trading" if volume_ratio >= 1.5 else "in light trading" if volume_ratio < 0.5 else ""
    return f"{c.symbol} {verb}{amount} {tone}".strip()


_JUMP_REASONS = (
    ("quarterly results beat estimates", "quarterly results miss estimates"),
    ("it raises full-year guidance", "it cuts full-year guidance"),
    ("a report of takeover interest", "a report of a regulatory probe"),
    ("a large contract win", "the loss of a major customer"),
)


def _jump_item(market: SimMarket, c: SimContract, day: date, stamp: str) -> NewsItem | None:
    """The headline of the day's news jump (the market model's gap before the session), if there is one."""
    jump = market.news_jump(c.con_id, (day - date(1970, 1, 1)).days)
    if not jump:
        return None
    gap = market.gap_time(c.con_id, day)
    if gap is None:
        return None
    good, bad = _JUMP_REASONS[_h(c.con_id, stamp, "jump") % len(_JUMP_REASONS)]
    pct = (math.exp(jump) - 1) * 100
    verb = "jumps" if jump > 0 else "slides"
    return NewsItem(gap, "BRFG", f"BRFG${c.con_id}.{stamp}.4",
                    f"{c.symbol} {verb} {abs(pct):.1f}% before the open after {good if jump > 0 else bad}")


def _day_items(market: SimMarket, c: SimContract, day: date, now: datetime) -> list[NewsItem]:
    """The headlines of one stock on one UTC day (none in the future)."""
    end = min(now, datetime(day.year, day.month, day.day, 21, 0, tzinfo=UTC))
    start = datetime(day.year, day.month, day.day, 14, 30, tzinfo=UTC)
    jump = _jump_item(market, c, day, day.strftime("%Y%m%d"))
    jump_items = [jump] if jump is not None and jump.time <= now else []
    if end <= start:
        return jump_items
    q_open, q_end = market.quote(c.con_id, start), market.quote(c.con_id, end)
    change = (q_end.last - q_open.close) / q_open.close * 100 if q_open.close else 0.0
    volume_ratio = q_end.volume / c.avg_volume if c.avg_volume else 1.0
    stamp = day.strftime("%Y%m%d")
    items = [NewsItem(end, "BRFG", f"BRFG${c.con_id}.{stamp}.1", _move_headline(c, change, volume_ratio))]
    mid = start + (end - start) / 2
    k = _h(c.con_id, stamp) % len(_COMPANY_ITEMS)
    items.append(NewsItem(mid, "DJNL", f"DJNL${c.con_id}.{stamp}.2",
                          _COMPANY_ITEMS[k].format(name=c.long_name.title() or c.symbol, symbol=c.symbol)))
    if abs(change) >= 2:
        action = "upgraded to Buy" if change > 0 else "downgraded to Sell"
        items.append(NewsItem(start + timedelta(minutes=5), "BRFUPDN", f"BRFUPDN${c.con_id}.{stamp}.3",
                              f"{c.symbol} {action} at a sell-side firm after a {change:+.1f}% move"))
    return jump_items + items


def historical_news(universe: ContractUniverse, market: SimMarket, con_id: int, providers: str,
                    start: datetime | None, end: datetime | None, total: int) -> list[NewsItem]:
    """Headlines for one contract, newest first: the last NEWS_DAYS days, the providers asked for (``A+B``)."""
    c = universe.by_con_id(con_id)
    if c is None or c.sec_type != "STK":
        return []
    now = market.clock.now()
    wanted = {p for p in providers.split("+") if p} or {p for p, _ in PROVIDERS}
    items: list[NewsItem] = []
    for back in range(NEWS_DAYS + 2):  # the last NEWS_DAYS weekdays: no news on weekends
        day = (now - timedelta(days=back)).date()
        if day.weekday() < 5:
            items += _day_items(market, c, day, now)
    items = [i for i in items if i.provider in wanted and (start is None or i.time >= start)
             and (end is None or i.time <= end)]
    items.sort(key=lambda i: (i.time, i.article_id), reverse=True)
    return items[:max(1, min(total or 10, 300))]


def article(universe: ContractUniverse, market: SimMarket, provider: str, article_id: str) -> str | None:
    """The body of one article (None if the id is not one of ours)."""
    try:
        prov, rest = article_id.split("$", 1)
        con_id_text, stamp, _n = rest.split(".")
        day = datetime.strptime(stamp, "%Y%m%d").date()
        con_id = int(con_id_text)
    except ValueError:
        return None
    c = universe.by_con_id(con_id)
    if c is None or prov != provider:
        return None
    item = next((i for i in _day_items(market, c, day, market.clock.now()) if i.article_id == article_id), None)
    if item is None:
        return None
    q = market.quote(c.con_id, item.time)
    return (f"{item.headline}.\n\n{c.long_name.title() or c.symbol} ({c.symbol}, {c.industry or 'n/a'}) last traded "
            f"at {q.last:.2f} against a previous close of {q.close:.2f}; session range {q.low:.2f}–{q.high:.2f} "
            f"on {q.volume:,.0f} shares. This is simulated news from the MMR gateway simulator; it is derived from "
            f"the simulated market and carries no information about the real company.")
