"""The deterministic NL order parser: text → intent or refusal (pure, offline). Conventions: README "Orders in
plain words" / CLAUDE.md. Anything it cannot read with certainty is refused, never guessed.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pyparsing as pp

from trader.nl.grammar import Token, tokenize
from trader.nl.intent import NLRefusal, refusal, validate
from trader.nl.symbols import EQUITY_SYMBOLS, FUTURES_ROOTS

# Fields a correction replaces together: setting one clears the others of its group.
_GROUPS = ({"price", "stop", "market", "at_value"}, {"exp_date", "exp_month"})


def _refuse(reason: str) -> None:
    raise NLRefusal(reason)


class _Segment:
    """The fields one stretch of text (between corrections) sets, in the order it sets them."""

    def __init__(self, correction: bool) -> None:
        self.correction = correction
        self.fields: dict[str, Any] = {}
        self.last_number: str | None = None  # the field the last number of this segment went to

    def set(self, name: str, value: Any, what: str) -> None:
        if name in self.fields and self.fields[name] != value:
            _refuse(f"two {what} in one command ({self.fields[name]!r} and {value!r}): not one order")
        self.fields[name] = value


def _meaningful(tokens: list[Token], i: int) -> int:
    """Index of the next token after ``i`` that is not filler (len(tokens) if none)."""
    j = i + 1
    while j < len(tokens) and tokens[j].kind == "FILLER":
        j += 1
    return j


def _as_date_pair(values: list[float]) -> tuple[int, int] | None:
    if len(values) == 2 and all(v == int(v) for v in values) and 1 <= values[0] <= 12 and 1 <= values[1] <= 31:
        return int(values[0]), int(values[1])
    return None


def _slash_is_date(t: Token, has_spread: bool, other_strikes: int) -> bool:
    """A slash pair like 12/18 is a date unless it is the only strike pair of a spread."""
    values, right = t.value
    return bool(_as_date_pair(values)) and not right and (not has_spread or other_strikes > 0)


def _read(tokens: list[Token], seg: _Segment, has_spread: bool, other_strikes: int = 0) -> None:
    i, n = 0, len(tokens)

    def peek(j: int) -> Token | None:
        k = _meaningful(tokens, j)
        return tokens[k] if k < n else None

    def number_after(j: int, what: str) -> tuple[float, int]:
        k = _meaningful(tokens, j)
        if k < n and tokens[k].kind == "ART":  # "for a credit of 2": skip the article
            k = _meaningful(tokens, k)
        if k < n and tokens[k].kind == "PRICE_SUFFIX":
            k = _meaningful(tokens, k)
        if k >= n or tokens[k].kind != "NUM":
            _refuse(f"'{tokens[j].text}' without a {what}")
        k2 = _meaningful(tokens, k)
        if k2 < n and tokens[k2].kind == "PRICE_SUFFIX":
            seg.fields.setdefault("price_word", tokens[k2].value)
            return tokens[k].value, k2
        return tokens[k].value, k

    def strikes(values: list[float], right: str | None, text: str) -> None:
        if len(values) > 2:
            _refuse(f"{len(values)} strikes ({text}): a vertical spread has exactly two")
        seg.set("strikes", tuple(values), "strike sets")
        if right:
            seg.set("right", right, "option rights")
        if len(values) == 2:
            seg.set("slash", True, "spreads")
        seg.last_number = "strikes"

    while i < n:
        t = tokens[i]
        k = t.kind
        if k in ("FILLER", "CONJ", "QTY_NOUN"):
            pass
        elif k == "QUESTION":
            _refuse("a question, not an order")
        elif k == "UNSUPPORTED":
            _refuse(f"'{t.text}' is not supported: only outrights, single options and vertical spreads")
        elif k == "UNKNOWN":
            _refuse(f"cannot read '{t.text}'")
        elif k == "ACTION":
            seg.set("action", t.value, "actions")
        elif k == "SYMBOL":
            seg.set("symbol", t.value, "instruments")
        elif k == "FUTCODE":
            root, month, year = t.value
            if root:
                seg.set("symbol", root, "instruments")
            seg.set("exp_month", ("code", month, year, t.text), "expiries")
        elif k == "MONTH":
            seg.set("exp_month", ("name", t.value, None, t.text), "expiries")
        elif k in ("MONTHDAY", "DATE_MDY", "WEEKDAY", "TODAY"):
            seg.set("exp_date", (k, t.value, t.text), "expiries")
        elif k == "SPREAD":
            seg.set("spread", t.value or "?", "spread types")
        elif k == "STRIKE_RIGHT":
            strikes([t.value[0]], t.value[1], t.text)
        elif k == "RIGHT":
            seg.set("right", t.value, "option rights")
        elif k == "SLASH":
            values, right = t.value
            pair = _as_date_pair(values)
            if pair and _slash_is_date(t, has_spread, other_strikes):
                seg.set("exp_date", ("MONTHDAY", (None, pair[0], pair[1]), t.text), "expiries")
            else:
                strikes(values, right, t.text)
        elif k == "STRIKE_WORD":
            nxt = peek(i)
            if nxt is not None and nxt.kind == "NUM":
                strikes([nxt.value], None, nxt.text)
                i = _meaningful(tokens, i)
        elif k in ("PRICE_MARK", "AT"):
            nxt = peek(i)
            if nxt is not None and nxt.kind == "SLASH":  # "at 5300/5200": the strikes
                i = _meaningful(tokens, i)
                continue
            if nxt is not None and nxt.kind == "STRIKE_RIGHT":  # "at 5300p": the strike
                i = _meaningful(tokens, i)
                continue
            value, i = number_after(i, "price")
            after = peek(i)
            if after is not None and after.kind == "QTY_NOUN":  # "for 3 contracts": a quantity
                seg.set("quantity", value, "quantities")
                seg.last_number = "quantity"
            elif after is not None and after.kind == "RIGHT":  # "at 500 calls": a strike
                strikes([value], after.value, after.text)
                i = _meaningful(tokens, i)
            elif k == "AT":
                seg.set("at_value", value, "prices")
                seg.last_number = "at_value"
            else:
                seg.set("price", value, "prices")
                seg.last_number = "price"
        elif k == "STOP":
            value, i = number_after(i, "stop price")
            seg.set("stop", value, "stop prices")
            seg.last_number = "stop"
        elif k == "MARKET":
            seg.set("market", True, "order types")
        elif k == "PRICE_SUFFIX":
            if t.value in ("credit", "debit"):
                nxt = peek(i)
                if nxt is not None and nxt.kind == "NUM":  # "credit of 2.5"
                    seg.fields.setdefault("price_word", t.value)
                    seg.set("price", nxt.value, "prices")
                    seg.last_number = "price"
                    i = _meaningful(tokens, i)
                else:
                    seg.fields.setdefault("price_word", t.value)
            else:
                _refuse(f"'{t.text}' without a number")
        elif k in ("GTC", "DAY"):
            seg.set("tif", t.value, "times in force")
        elif k == "ART":
            nxt = peek(i)
            if "quantity" not in seg.fields and not (nxt is not None and nxt.kind == "NUM"):
                seg.set("quantity", 1, "quantities")
        elif k == "NUM":
            nxt = peek(i)
            nk = nxt.kind if nxt is not None else None
            if nk == "RIGHT":
                strikes([t.value], nxt.value, t.text)
                i = _meaningful(tokens, i)
            elif nk == "STRIKE_WORD":
                strikes([t.value], None, t.text)
                i = _meaningful(tokens, i)
            elif nk == "PRICE_SUFFIX":
                seg.fields.setdefault("price_word", nxt.value)
                seg.set("price", t.value, "prices")
                seg.last_number = "price"
                i = _meaningful(tokens, i)
            elif nk == "QTY_NOUN" or "quantity" not in seg.fields and not seg.correction:
                seg.set("quantity", t.value, "quantities")
                seg.last_number = "quantity"
            elif seg.correction and seg.last_number is None:
                seg.fields["bare_number"] = t.value
                seg.last_number = "bare"
            else:
                _refuse(f"cannot tell what the number {t.text} is")
        i += 1


def _merge(segments: list[_Segment]) -> dict[str, Any]:
    out: dict[str, Any] = dict(segments[0].fields)
    last = segments[0].last_number
    for seg in segments[1:]:
        f = dict(seg.fields)
        if "bare_number" in f:  # "make that 5": replaces the field the last number went to
            value = f.pop("bare_number")
            if last in (None, "strikes") and not (last == "strikes" and len(out.get("strikes", ())) == 1):
                _refuse("a correction with a bare number: cannot tell which field it replaces")
            f["strikes" if last == "strikes" else last] = (value,) if last == "strikes" else value
        for name in f:
            for group in _GROUPS:
                if name in group:
                    for other in group - {name}:
                        out.pop(other, None)
        out.update(f)
        last = seg.last_number if seg.last_number not in (None, "bare") else last
    return out


def _first_weekday(ref: date, weekday: int) -> date:
    return ref + timedelta(days=(weekday - ref.weekday()) % 7)


def _option_expiry(spec: tuple[str, Any, str], ref: date) -> date:
    kind, value, text = spec
    if kind == "TODAY":
        return ref + timedelta(days=value)
    if kind == "WEEKDAY":
        mod, weekday = value
        first = _first_weekday(ref, weekday)
        return first + timedelta(days=7) if mod == "next" else first
    year, month, day = value
    if year is not None and year < 100:
        year += 2000
    for y in [year] if year is not None else range(ref.year, ref.year + 9):  # the next such date (2/29 too)
        try:
            d = date(y, month, day)
        except ValueError:
            continue
        if d >= ref:
            return d
        if year is not None:
            _refuse(f"expiry '{text}' is before {ref.isoformat()}")
    _refuse(f"impossible date '{text}'")


def _future_month(spec: tuple[str, int, str | None, str], symbol: str, ref: date) -> str:
    kind, month, year_text, text = spec
    if kind == "name":
        year = ref.year if month >= ref.month else ref.year + 1
    elif len(year_text or "") == 2:
        year = 2000 + int(year_text or 0)
    else:  # one digit: the next year ending in it
        year = ref.year + (int(year_text or 0) - ref.year) % 10
    if (year, month) < (ref.year, ref.month):
        _refuse(f"contract month '{text}' has expired")
    if month not in FUTURES_ROOTS[symbol]:
        _refuse(f"{symbol} lists no contract in month {month} ('{text}')")
    return f"{year:04d}-{month:02d}"


def _positive_price(value: float, what: str) -> float:
    if value <= 0:
        _refuse(f"{what} must be > 0")
    return int(value) if value == int(value) else value


def _build(f: dict[str, Any], ref: date) -> dict[str, Any]:
    action = f.get("action") or _refuse("no buy/sell word: not an order")
    symbol = f.get("symbol") or _refuse("no known symbol")
    future = symbol in FUTURES_ROOTS
    if not future and symbol not in EQUITY_SYMBOLS:
        _refuse(f"unknown symbol {symbol}")
    q = f.get("quantity")
    if q is None:
        _refuse("no quantity")
    if q != int(q) or q <= 0:
        _refuse(f"quantity {q:g} is not a positive whole number of contracts/shares")
    option = bool(f.get("strikes") or f.get("right") or f.get("spread"))
    strike_list = list(f.get("strikes") or ())
    price, at_value = f.get("price"), f.get("at_value")
    if at_value is not None:
        if option and not strike_list:  # "at N" is the strike only when no strike is given another way
            strike_list = [at_value]
        elif price is not None:
            _refuse("two prices in one command")
        else:
            price = at_value
    stop, market = f.get("stop"), f.get("market")
    if sum(x is not None and x is not False for x in (price, stop, market)) > 1:
        _refuse("more than one order type/price (market, limit, stop)")
    order_type, limit_price = ("LMT", _positive_price(price, "the limit price")) if price is not None else \
        ("STP", _positive_price(stop, "the stop price")) if stop is not None else ("MKT", None)
    tif = f.get("tif", "DAY")
    base = {"action": action, "quantity": int(q), "symbol": symbol, "order_type": order_type,
            "limit_price": limit_price, "tif": tif}
    if not option:
        if f.get("exp_date"):
            _refuse("a future takes a contract month (dec, Z6), not a day" if future else "a stock has no expiry")
        if f.get("exp_month") and not future:
            _refuse("a stock has no expiry")
        expiry = _future_month(f["exp_month"], symbol, ref) if f.get("exp_month") else None
        if f.get("price_word") in ("credit", "debit"):
            _refuse("credit/debit is for options")
        return {**base, "sec_type": "FUT" if future else "STK", "structure": "single", "legs": [], "expiry": expiry}
    if stop is not None:
        _refuse("stop orders on options are not supported")
    if f.get("exp_month"):
        _refuse("an option needs an expiry date (friday, dec 18, 12/18), not a contract month")
    if not f.get("exp_date"):
        _refuse("an option without an expiry")
    expiry = _option_expiry(f["exp_date"], ref).isoformat()
    spread = f.get("spread")
    right = f.get("right")
    if spread and spread != "?":
        if right and right != spread:
            _refuse("a call spread of puts (or a put spread of calls)")
        right = spread
    if not right:
        _refuse("call or put?")
    vertical = bool(spread) or len(strike_list) == 2 and bool(f.get("slash"))
    word = f.get("price_word")
    if word in ("credit", "debit") and (word == "credit") != (action == "SELL"):
        _refuse(f"a {'sold' if action == 'SELL' else 'bought'} option is not a {word}")
    strikes = [_positive_price(s, "a strike") for s in strike_list]
    if not vertical:
        if len(strikes) != 1:
            _refuse("no strike" if not strikes else "two strikes without a spread")
        legs = [{"right": right, "strike": strikes[0], "action": action}]
        return {**base, "sec_type": "FOP" if future else "OPT", "structure": "single", "legs": legs,
                "expiry": expiry}
    if len(strikes) != 2:
        _refuse(f"a vertical spread needs two strikes, got {len(strikes)}")
    low, high = sorted(strikes)
    if low == high:
        _refuse("a vertical spread needs two different strikes")
    other = "SELL" if action == "BUY" else "BUY"
    # The legs follow the spread's direction: a bought call spread is long the lower call, a bought put
    # spread long the higher put; selling reverses both.
    low_action = action if right == "C" else other
    legs = [{"right": right, "strike": low, "action": low_action},
            {"right": right, "strike": high, "action": other if low_action == action else action}]
    return {**base, "sec_type": "FOP" if future else "OPT", "structure": "vertical", "legs": legs,
            "expiry": expiry}


def parse(text: str, ref_date: date | None = None) -> dict[str, Any]:
    """The intent of ``text`` (dates relative to ``ref_date``, default today), or ``{"refuse": true, …}``."""
    ref = ref_date or date.today()
    try:
        if not text or not text.strip():
            _refuse("empty command")
        try:
            tokens = tokenize(text)
        except pp.ParseBaseException as exc:
            _refuse(f"cannot read the command: {exc}")
        has_spread = any(t.kind == "SPREAD" for t in tokens)
        segments = [_Segment(False)]
        for t in tokens:
            if t.kind == "CORRECTION":
                if segments[-1].fields or segments[-1].correction is False:
                    segments.append(_Segment(True))
                continue
            segments[-1].__dict__.setdefault("tokens", []).append(t)
        other_strikes = sum(t.kind == "STRIKE_RIGHT" or t.kind == "SLASH" and not _slash_is_date(t, True, 1)
                            for t in tokens)
        for seg in segments:
            _read(seg.__dict__.get("tokens", []), seg, has_spread, other_strikes)
        result = _build(_merge([s for s in segments if s.fields or not s.correction]), ref)
    except NLRefusal as exc:
        return refusal(str(exc))
    return {k: result[k] for k in ("action", "quantity", "symbol", "sec_type", "structure", "legs", "expiry",
                                    "order_type", "limit_price", "tif")} if not validate(result).get("refuse") \
        else validate(result)
