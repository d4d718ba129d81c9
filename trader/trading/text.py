"""Free text that is stored or printed (reasoning, reject reasons, names): length-capped, control characters out.

An agent or a hostile client can send megabytes of text, ANSI escapes that repaint a person's terminal, or NULs
that truncate a log line. :func:`clean_text` is applied in the domain before anything is stored, so every front
end shows the same, safe text.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MAX_REASONING", "MAX_REASON", "MAX_NAME", "clean_text"]

MAX_REASONING = 4000  # a proposal's reasoning
MAX_REASON = 500  # a reject / state reason
MAX_NAME = 64  # group names and similar labels

# ANSI/VT escape sequences (CSI … final byte, OSC … BEL/ST, and two-byte ESC x): removed whole, not just the ESC.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]")


def _keep(ch: str, keep_newlines: bool) -> bool:
    if ch in "\n\t":
        return keep_newlines
    # Cc: C0/C1 controls, DEL; Cf: format characters such as bidi overrides (U+202E) that disguise text.
    return unicodedata.category(ch) not in ("Cc", "Cf", "Cs")


def clean_text(value: object, max_len: int, *, keep_newlines: bool = False) -> str:
    """``value`` as safe text: escape sequences and control/format characters removed (``\\n`` and ``\\t``
    kept when ``keep_newlines``, else turned into spaces), surrounding whitespace stripped, cut to ``max_len``
    characters (ending in "…" when cut). ``None`` gives ""."""
    if value is None:
        return ""
    text = str(value)
    if text.isascii() and text.isprintable():  # the common case: nothing to remove (~20x faster per call)
        text = text.strip()
        return text if len(text) <= max_len else text[: max(max_len - 1, 0)].rstrip() + "…"
    text = _ESCAPES.sub("", text)
    if not keep_newlines:
        text = text.replace("\r\n", " ").replace("\n", " ").replace("\t", " ")
    else:
        text = text.replace("\r\n", "\n")
    text = "".join(ch for ch in text if _keep(ch, keep_newlines)).strip()
    if len(text) > max_len:
        text = text[: max(max_len - 1, 0)].rstrip() + "…"
    return text
