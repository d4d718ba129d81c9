"""How many tokens an agent pays to read a command's output: a conservative (high) estimate.

No real tokenizer works offline here: ``tiktoken`` downloads its BPE tables at run time and a Hugging Face
tokenizer needs its ``tokenizer.json`` from the hub. So the count is an estimate built to err high for
JSON-heavy output on BPE tokenizers (cl100k/o200k-style, and Claude's):

- the text is split into BPE pre-tokens (letter runs, digit runs, single punctuation characters, whitespace
  runs) — real tokenizers never merge across those boundaries, except that they often *do* merge common
  punctuation such as ``":"``, ``","`` or ``"},{"`` into one token, which this estimate counts one per character;
- a letter run costs one token per 3 letters (rounded up): real vocabularies hold whole common words
  (``"symbol"``, ``"quantity"``) as one token, and rare upper-case tickers rarely need more than one per 3;
- a digit run costs one token per 3 digits (tokenizers split numbers into at most 3-digit groups);
- a whitespace run costs one token.

It is an upper estimate in practice (typically 1.3–2x a real count for JSON), not a proven bound: a budget
met under this estimate is met with margin. The older estimator in ``trader.trading.snapshot`` is a floor.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_PIECES = re.compile(r"[^\W\d_]+|\d+|\s+|.", re.UNICODE | re.DOTALL)


def conservative_tokens(obj: Any) -> int:
    """High estimate of the tokens in ``obj`` (a string, or anything JSON-encodable as compact JSON)."""
    text = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    total = 0
    for piece in _PIECES.findall(text):
        if piece[0].isspace():
            total += 1
        elif piece[0].isdigit() or piece[0].isalpha():
            total += math.ceil(len(piece) / 3)
        else:
            total += 1
    return total
