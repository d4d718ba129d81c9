"""The scanner of the NL order grammar: text → typed tokens, built with pyparsing (pure).

Each alternative below is a pyparsing element with a parse action that yields one :class:`Token`; the
alternatives are tried in order (multi-word phrases before single words) and every character of the text
must belong to some token. What a token *means* in context (quantity, strike, price …) is decided by
``trader.nl.parser``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pyparsing as pp

from trader.nl.symbols import EQUITY_SYMBOLS, FUTURES_ROOTS

MONTHS = {"jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4, "april": 4, "may": 5,
          "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8, "sep": 9, "sept": 9, "september": 9,
          "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12, "december": 12}
MONTH_CODES = "FGHJKMNQUVXZ"  # futures month codes, January … December
WEEKDAYS = {"monday": 0, "mon": 0, "tuesday": 1, "tue": 1, "tues": 1, "wednesday": 2, "wed": 2, "thursday": 3,
            "thu": 3, "thurs": 3, "friday": 4, "fri": 4}
NUMBER_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
                "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
                "forty": 40, "fifty": 50, "hundred": 100, "dozen": 12, "half": 0.5}
ACTIONS = {"buy": "BUY", "long": "BUY", "purchase": "BUY", "bto": "BUY", "btc": "BUY", "sell": "SELL",
           "short": "SELL", "write": "SELL", "sto": "SELL", "stc": "SELL"}
# Words that carry no order field ("buy 3 of the ES contracts please").
FILLER = frozenset("""the of on in to open opening close closing please order orders exp expiring expiry expiration
expires i i'd id want would like get me my let's lets let us can you could place put_ with some worth
contracts contract lots lot shares share cars car options option future futures stock etf""".split())
UNSUPPORTED = ("iron condor", "condor", "butterfly", "butterflies", "fly", "straddle", "strangle", "calendar",
               "diagonal", "ratio", "collar", "covered", "box", "combo", "risk reversal")
QUANTITY_NOUNS = frozenset({"contracts", "contract", "lots", "lot", "shares", "share", "cars", "car"})


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # ACTION NUM ART SYMBOL FUTCODE STRIKE_RIGHT RIGHT SLASH DATE_MDY MONTHDAY MONTH WEEKDAY TODAY
    #            SPREAD UNSUPPORTED PRICE_MARK AT STOP MARKET PRICE_SUFFIX STRIKE_WORD QTY_NOUN GTC DAY CORRECTION
    #            CONJ QUESTION UNKNOWN
    value: Any
    text: str


def _right(word: str | None) -> str | None:
    return None if not word else word[0].upper()


def _number(text: str) -> float:
    return float(text.replace("$", "").replace(",", ""))


def _kw(pattern: str) -> str:
    """A keyword pattern: the phrase, not the start of a longer word."""
    return rf"(?:{pattern})(?![a-z0-9])"


def _word_token(text: str) -> Token:
    low = text.lower()
    if low in ACTIONS:
        return Token("ACTION", ACTIONS[low], text)
    if low in NUMBER_WORDS:
        return Token("NUM", float(NUMBER_WORDS[low]), text)
    if low in ("a", "an"):
        return Token("ART", 1, text)
    if low.upper() in FUTURES_ROOTS or low.upper() in EQUITY_SYMBOLS:
        return Token("SYMBOL", low.upper(), text)
    m = re.fullmatch(r"([a-z0-9]{0,4}?)([fghjkmnquvxz])(\d{1,2})", low)
    if m and (not m.group(1) or m.group(1).upper() in FUTURES_ROOTS):  # Z6, Z26, ESZ6
        return Token("FUTCODE", (m.group(1).upper() or None, MONTH_CODES.index(m.group(2).upper()) + 1,
                                 m.group(3)), text)
    if low in MONTHS:
        return Token("MONTH", MONTHS[low], text)
    if low in WEEKDAYS:
        return Token("WEEKDAY", ("", WEEKDAYS[low]), text)
    if low in ("calls", "call", "puts", "put", "c", "p"):
        return Token("RIGHT", _right(low), text)
    if low in QUANTITY_NOUNS:
        return Token("QTY_NOUN", low, text)
    if low in ("and", "then", "also", "plus"):
        return Token("CONJ", low, text)
    if low in FILLER:
        return Token("FILLER", low, text)
    if re.fullmatch(r"[A-Z][A-Z0-9.]{0,5}", text):  # written like a ticker: a symbol we do not know
        return Token("SYMBOL", text, text)
    return Token("UNKNOWN", text, text)


def _alternatives() -> list[tuple[str, Any]]:
    """(pattern, token maker) in the order they are tried."""
    num = r"\$?\d+(?:,\d{3})*(?:\.\d+)?"
    # a right word, unless it starts "call spread"/"put vertical" (then it belongs to the spread)
    rights = r"(?:calls?|puts?|c|p)(?![a-z0-9])(?!\s*(?:vertical\s+|debit\s+|credit\s+)?(?:spread|vertical))"
    months = "|".join(sorted(MONTHS, key=len, reverse=True))
    weekdays = "|".join(sorted(WEEKDAYS, key=len, reverse=True))
    return [
        (_kw(r"no,?\s+wait|i\s+mean|actually|make\s+(?:it|that)|scratch\s+that|sorry|correction|rather"),
         lambda m, t: Token("CORRECTION", None, t)),
        (_kw(r"gtc|good\s+(?:till?|until|'til|til)\s+cancel+ed"), lambda m, t: Token("GTC", "GTC", t)),
        (_kw(r"day\s+order|good\s+for\s+(?:the\s+)?day|day"), lambda m, t: Token("DAY", "DAY", t)),
        (_kw(r"go\s+(long|short)"), lambda m, t: Token("ACTION", ACTIONS[m.group(1).lower()], t)),
        (_kw(r"(buy|sell)\s+to\s+(?:open|close)"), lambda m, t: Token("ACTION", ACTIONS[m.group(1).lower()], t)),
        (_kw("|".join(u.replace(" ", r"\s+") + "s?" for u in UNSUPPORTED)),
         lambda m, t: Token("UNSUPPORTED", t.lower(), t)),
        (_kw(r"(call|put)s?\s+(?:vertical\s+|debit\s+|credit\s+)?(?:spreads?|verticals?)|(cs|ps)"),
         lambda m, t: Token("SPREAD", _right(m.group(1) or m.group(2)), t)),
        (_kw(r"(?:vertical|debit|credit)?\s*(?:spreads?|verticals?)"), lambda m, t: Token("SPREAD", None, t)),
        (_kw(r"at\s+(?:the\s+)?(?:market|mkt)|market|mkt"), lambda m, t: Token("MARKET", None, t)),
        (_kw(r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})"),
         lambda m, t: Token("DATE_MDY", (int(m.group(3)), int(m.group(1)), int(m.group(2))), t)),
        (_kw(rf"({num}(?:\s*/\s*{num})+)\s*({rights})?"),
         lambda m, t: Token("SLASH", ([_number(x) for x in re.split(r"\s*/\s*", m.group(1))],
                                      _right(m.group(2))), t)),
        (_kw(rf"({num})\s*({rights})"), lambda m, t: Token("STRIKE_RIGHT", (_number(m.group(1)),
                                                                             _right(m.group(2))), t)),
        (_kw(rf"({months})\.?\s*(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(20\d\d))?"),
         lambda m, t: Token("MONTHDAY", (int(m.group(3)) if m.group(3) else None, MONTHS[m.group(1).lower()],
                                         int(m.group(2))), t)),
        (_kw(rf"(this|next|this\s+coming|coming)\s+({weekdays})"),
         lambda m, t: Token("WEEKDAY", (m.group(1).split()[0].lower(), WEEKDAYS[m.group(2).lower()]), t)),
        (_kw(r"today|0\s?dte|same\s+day"), lambda m, t: Token("TODAY", 0, t)),
        (_kw(r"tomorrow|1\s?dte"), lambda m, t: Token("TODAY", 1, t)),
        (_kw(r"limit|lmt|for|@"), lambda m, t: Token("PRICE_MARK", t.lower(), t)),
        (r"@", lambda m, t: Token("PRICE_MARK", "@", t)),
        (_kw(r"at"), lambda m, t: Token("AT", "at", t)),
        (_kw(r"stop(?:\s+(?:at|@))?|stp"), lambda m, t: Token("STOP", None, t)),
        (_kw(r"points?|pts?|credit|debit|handles?"), lambda m, t: Token("PRICE_SUFFIX", t.lower(), t)),
        (_kw(r"strikes?"), lambda m, t: Token("STRIKE_WORD", None, t)),
        (_kw(rf"(-?{num})\s*x"), lambda m, t: Token("NUM", _number(m.group(1)), t)),
        (_kw(rf"-?{num}"), lambda m, t: Token("NUM", _number(t), t)),
        (r"[a-z][a-z0-9.']*(?<!\.)", lambda m, t: _word_token(t)),
        (r"[;&]", lambda m, t: Token("CONJ", t, t)),
        (r"\?", lambda m, t: Token("QUESTION", t, t)),
        (r"[,.:!+()\"]", lambda m, t: Token("FILLER", t, t)),
        (r"\S", lambda m, t: Token("UNKNOWN", t, t)),
    ]


@lru_cache(maxsize=1)
def scanner() -> pp.ParserElement:
    """The pyparsing scanner: a sequence of tokens covering the whole text."""
    elements = []
    for pattern, make in _alternatives():
        rx = re.compile(pattern, re.IGNORECASE)

        def action(s: str, loc: int, toks: pp.ParseResults, rx: re.Pattern = rx, make: Any = make) -> Token:
            text = toks[0]
            return make(rx.match(text), text)

        elements.append(pp.Regex(rx).set_parse_action(action))
    return pp.ZeroOrMore(pp.MatchFirst(elements)) + pp.StringEnd()


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text`` (fillers included; the parser drops them)."""
    return list(scanner().parse_string(text.replace("\u2019", "'"), parse_all=True))
