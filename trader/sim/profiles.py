"""Intraday shape of the simulated market: how a day's variance and volume spread over its 1,440 minutes.

Each root contract follows a template of its exchange (plain weekday rules in the exchange's time zone, so the
shape is a pure function of the day, whatever the wall clock or the live calendar mode; exchange holidays
are ordinary weekdays here — history skips them, and the next open's gap carries the holiday's move):

- ``us_equity`` (US stocks and ETFs): regular hours 09:30–16:00 New York with a U-shaped profile (busy at the
  open and the close), pre/post market 04:00–09:30 and 16:00–20:00 at a low weight, a trickle overnight (IB's
  overnight venue; keeps a 24×7 stream alive), and a *gap minute* just before 04:00 that carries
  ``OVERNIGHT_SHARE`` of a weekday's variance — so every session opens with a gap;
- ``index`` (SPX, NDX, RUT, VIX): U-shaped regular hours, a moderate weight around the clock (index futures
  trade overnight) and no gap minute: regular-hours bars gap from the overnight drift alone;
- ``fx`` (IDEALPRO, 24×5): flat from Sunday 17:00 to Friday 17:00 New York, a trickle over the weekend;
- ``always`` (crypto): flat every minute of every day;
- other stock exchanges (Xetra, LSE, Tokyo, ASX, Toronto, SIX): their regular hours, U-shaped, with a gap minute.

Weights are normalised per UTC day: a day's total variance (from trader/sim/factors.py) is spread in
proportion to them, and its volume by the separate volume shares (zero-free: a trickle outside sessions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

OVERNIGHT_SHARE = 0.12  # share of a weekday's variance in the gap minute before the session opens
EXTENDED_WEIGHT = 0.08  # pre/post-market minute, relative to an average regular-hours minute
CLOSED_WEIGHT = 0.03  # a minute outside every session
INDEX_OFF_HOURS_WEIGHT = 0.3  # index minutes outside regular hours (futures keep trading)
VOLUME_TRICKLE = 0.02  # volume share of a closed minute, relative to an average session minute

# template -> (time zone, regular open, regular close, extended open, extended close) as local minutes of day
_SESSIONS: dict[str, tuple[str, int, int, int, int]] = {
    "us_equity": ("America/New_York", 570, 960, 240, 1200),
    "index": ("America/New_York", 570, 960, 570, 960),
    "XETR": ("Europe/Berlin", 540, 1050, 540, 1050),
    "XLON": ("Europe/London", 480, 990, 480, 990),
    "XTKS": ("Asia/Tokyo", 540, 900, 540, 900),
    "XASX": ("Australia/Sydney", 600, 960, 600, 960),
    "XTSE": ("America/Toronto", 570, 960, 570, 960),
    "XSWX": ("Europe/Zurich", 540, 1050, 540, 1050),
}
_NY = "America/New_York"


@dataclass(frozen=True, slots=True)
class Profile:
    """One UTC day of a template: per-minute variance weights (sum 1), their cumulative sums (1,441 values,
    0 … 1), per-minute volume shares (a regular session day sums to ~1) and the gap minute (-1: none)."""

    weight: np.ndarray
    cum: np.ndarray
    volume: np.ndarray
    gap: int


def template_of(calendar_name: str, sec_type: str) -> str:
    """The intraday template of a root contract from its exchange calendar name (see TradingCalendar)."""
    if calendar_name == "24x7":
        return "always"
    if calendar_name == "FX24x5":
        return "fx"
    if calendar_name == "XNYS" or calendar_name not in _SESSIONS:
        return "index" if sec_type == "IND" else "us_equity"
    return calendar_name


def _u_shape(f: np.ndarray) -> np.ndarray:
    """Relative activity across regular hours (f in [0, 1)): high at the open and the close, mean ≈ 1."""
    return 0.45 + 1.65 * (2.0 * f - 1.0) ** 2


def _local_minutes(tz: str, day: int) -> tuple[np.ndarray, np.ndarray]:
    """(local minute of day, local weekday) of each minute of UTC day `day` (DST-exact to the hour)."""
    zone = ZoneInfo(tz)
    start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)

    def offset(hour: int) -> int:
        return int((start + timedelta(hours=hour)).astimezone(zone).utcoffset().total_seconds() // 60)

    first, last = offset(0), offset(23)
    if first == last:  # no DST change inside this UTC day (nearly always)
        local = np.arange(1440) + first + day * 1440  # local minutes since the epoch
    else:
        local = np.arange(1440) + np.repeat([offset(h) for h in range(24)], 60) + day * 1440
    return local % 1440, ((local // 1440) + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)


@lru_cache(maxsize=4096)
def profile(template: str, day: int) -> Profile:
    """The intraday profile of one template on one UTC day (cached; pure function of its arguments)."""
    if template == "always":
        w = np.full(1440, 1.0 / 1440)
        return _finish(w, np.full(1440, 1.0 / 1440), -1)
    if template == "fx":
        mod, wd = _local_minutes(_NY, day)
        closed = ((wd == 4) & (mod >= 1020)) | (wd == 5) | ((wd == 6) & (mod < 1020))
        w = np.where(closed, CLOSED_WEIGHT, 1.0)
        vol = np.where(closed, VOLUME_TRICKLE, 1.0) / 1440
        return _finish(w / w.sum(), vol, -1)
    tz, rth0, rth1, ext0, ext1 = _SESSIONS[template]
    mod, wd = _local_minutes(tz, day)
    weekday = wd < 5
    rth = weekday & (mod >= rth0) & (mod < rth1)
    ext = weekday & (mod >= ext0) & (mod < ext1) & ~rth
    shape = _u_shape((mod - rth0) / (rth1 - rth0))
    off = INDEX_OFF_HOURS_WEIGHT if template == "index" else CLOSED_WEIGHT
    w = np.where(rth, shape, np.where(ext, EXTENDED_WEIGHT, off))
    vol = np.where(rth, shape, np.where(ext, EXTENDED_WEIGHT, VOLUME_TRICKLE)) / (rth1 - rth0)
    gap = -1
    if template != "index":
        opens = np.nonzero(weekday & (mod == (ext0 - 1) % 1440))[0]
        if len(opens):
            gap = int(opens[0])
            w = w.copy()
            # the lump is OVERNIGHT_SHARE of a full weekday's variance (computed as if the whole session sat in this day)
            full = _full_weekday_weight(template)
            w[gap] = full * OVERNIGHT_SHARE / (1.0 - OVERNIGHT_SHARE)
    return _finish(w / w.sum(), vol, gap)


@lru_cache(maxsize=16)
def _full_weekday_weight(template: str) -> float:
    """Sum of a template's minute weights over one local weekday without its gap minute."""
    tz, rth0, rth1, ext0, ext1 = _SESSIONS[template]
    mod = np.arange(1440)
    rth = (mod >= rth0) & (mod < rth1)
    ext = (mod >= ext0) & (mod < ext1) & ~rth
    return float(np.where(rth, _u_shape((mod - rth0) / (rth1 - rth0)), np.where(ext, EXTENDED_WEIGHT, CLOSED_WEIGHT)).sum())


def _finish(w: np.ndarray, vol: np.ndarray, gap: int) -> Profile:
    cum = np.concatenate(([0.0], np.cumsum(w)))
    cum[-1] = 1.0
    return Profile(w, cum, vol, gap)


@lru_cache(maxsize=8192)
def _bounds_at(template: str, ts: int) -> tuple[int, int]:
    if template == "always":
        s0 = ts - ts % 86_400
        return s0, s0
    if template == "fx":  # back-to-back daily sessions from 17:00 New York, Sunday to Thursday evenings
        tz, open_min, days = _NY, 17 * 60, (6, 0, 1, 2, 3)
        close_min = open_min
    else:
        tz, _rth0, close_min, open_min, _ext1 = _SESSIONS[template]
        days = (0, 1, 2, 3, 4)
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(ts, zone)

    def at(d, minute: int) -> int:
        return int(datetime(d.year, d.month, d.day, minute // 60, minute % 60, tzinfo=zone).timestamp())

    d = local.date()
    for _ in range(8):  # the last session that opened at or before ts
        if d.weekday() in days and at(d, open_min) <= ts:
            break
        d -= timedelta(days=1)
    s0 = at(d, open_min)
    if template == "fx":
        return s0, s0
    prev = d - timedelta(days=1)
    while prev.weekday() not in days:
        prev -= timedelta(days=1)
    return s0, at(prev, close_min)


def session_bounds(template: str, ts: int) -> tuple[int, int]:
    """(start of the session in progress or last started, end of the previous regular session) by the template's
    weekday rules — what a 24x7 stream reports as the day's open and previous close (no exchange calendar load)."""
    bucket = ts - ts % 1800  # every template's boundaries fall on whole half hours
    return _bounds_at(template, bucket)


@lru_cache(maxsize=65536)
def has_gap(template: str, day: int) -> bool:
    """``profile(template, day).gap >= 0`` without building the profile (news-jump days are checked often)."""
    if template in ("always", "fx", "index"):
        return False
    tz, _rth0, _rth1, ext0, _ext1 = _SESSIONS[template]
    zone = ZoneInfo(tz)
    start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)
    first = int(start.astimezone(zone).utcoffset().total_seconds() // 60)
    last = int((start + timedelta(hours=23)).astimezone(zone).utcoffset().total_seconds() // 60)
    if first != last:  # a DST change inside the day: ask the exact profile
        return profile(template, day).gap >= 0
    minute = (ext0 - 1 - first) % 1440  # the UTC minute of this day whose local time is the gap minute
    return ((day * 1440 + minute + first) // 1440 + 3) % 7 < 5

