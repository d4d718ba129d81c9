"""Currency pairs and conversion (pure): parse ``EURUSD`` / ``EUR.USD`` / ``EUR/USD`` / ``EUR USD``, the majors,
and a conversion through a quoted pair, its inverse, or two legs via USD.

IB lists a pair once, in the market's convention (``EUR.USD``, ``USD.JPY``): converting USD to EUR uses EUR.USD
inverted, and EUR to JPY without a listed EUR.JPY goes through USD.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

__all__ = ["MAJORS", "parse_pair", "conversion_legs", "convert"]

# The seven majors, in the market's quoting convention (base, quote).
MAJORS: tuple[tuple[str, str], ...] = (("EUR", "USD"), ("GBP", "USD"), ("USD", "JPY"), ("USD", "CHF"),
                                       ("AUD", "USD"), ("USD", "CAD"), ("NZD", "USD"))
_CCY = re.compile(r"^[A-Z]{3}$")


def parse_pair(first: str, second: str | None = None) -> tuple[str, str]:
    """(base, quote) from ``EURUSD``, ``EUR.USD``, ``EUR/USD`` or two arguments ``EUR USD``; ValueError else."""
    text = (first + (second or "")).strip().upper().replace(".", "").replace("/", "").replace(" ", "")
    base, quote = text[:3], text[3:]
    if len(text) != 6 or not _CCY.match(base) or not _CCY.match(quote) or base == quote:
        raise ValueError(f"not a currency pair: {first!r}{'' if second is None else ' ' + repr(second)} "
                         "(give EURUSD, EUR.USD or EUR USD)")
    return base, quote


def conversion_legs(src: str, dst: str, listed: Callable[[str, str], bool]) -> list[tuple[str, str, bool]]:
    """How to convert ``src`` into ``dst``: legs (base, quote, inverted) over pairs for which ``listed(base,
    quote)`` is true — the direct pair, its inverse, or two legs through USD. ValueError when none works."""
    src, dst = src.upper(), dst.upper()
    if src == dst:
        return []

    def leg(a: str, b: str) -> tuple[str, str, bool] | None:
        if listed(a, b):
            return (a, b, False)
        if listed(b, a):
            return (b, a, True)
        return None

    direct = leg(src, dst)
    if direct is not None:
        return [direct]
    if "USD" not in (src, dst):
        first, second = leg(src, "USD"), leg("USD", dst)
        if first is not None and second is not None:
            return [first, second]
    raise ValueError(f"no listed pair converts {src} to {dst}")


def convert(amount: float, legs: Sequence[tuple[str, str, bool]], rates: Sequence[float]) -> float:
    """``amount`` through each leg at its rate (quote currency per base unit; an inverted leg divides)."""
    out = float(amount)
    for (_base, _quote, inverted), rate in zip(legs, rates, strict=True):
        if not rate or rate <= 0:
            raise ValueError(f"no rate for {_base}.{_quote}")
        out = out / rate if inverted else out * rate
    return out
