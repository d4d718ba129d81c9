"""Free text (reasoning, reasons, names) is capped and cleaned in the domain, before it is stored or printed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trader.errors import InvalidProposal
from trader.trading.models import Action
from trader.trading.proposals import Proposal, ProposalState, proposal_from_dict, proposal_to_dict, transition
from trader.trading.text import MAX_NAME, MAX_REASON, MAX_REASONING, clean_text

T0 = datetime(2025, 1, 2, 15, 0, tzinfo=UTC)


def make(**kw) -> Proposal:
    return Proposal(**{"id": 1, "symbol": "AAPL", "action": Action.BUY, "created_at": T0, "quantity": 10.0, **kw})


def test_control_characters_and_escapes_are_removed():
    assert clean_text("ok\x00\x07 \x1b[31mred\x1b[0m \x1b]0;title\x07done\u202e", 100) == "ok red done"
    assert clean_text("line1\nline2\tx\r\n", 100) == "line1 line2 x"
    assert clean_text("line1\nline2\tx\r\n", 100, keep_newlines=True) == "line1\nline2\tx"
    assert clean_text(None, 10) == ""


def test_long_text_is_cut_with_an_ellipsis():
    out = clean_text("x" * 10_000, 50)
    assert len(out) == 50 and out.endswith("…")


@given(st.text(), st.integers(min_value=1, max_value=200), st.booleans())
def test_clean_text_is_bounded_safe_and_idempotent(text, cap, newlines):
    out = clean_text(text, cap, keep_newlines=newlines)
    assert len(out) <= cap
    assert "\x1b" not in out and "\x00" not in out and "\r" not in out
    assert clean_text(out, cap, keep_newlines=newlines) == out


def test_proposal_reasoning_group_and_reason_are_cleaned_before_storage():
    p = make(reasoning="why\n\x1b[2Jbecause" + "z" * 10_000, group="tech\x00\x1b[1m" + "g" * 100)
    assert p.reasoning.startswith("why\nbecause") and len(p.reasoning) == MAX_REASONING
    assert p.group.startswith("tech") and len(p.group) <= MAX_NAME and "\x00" not in p.group
    rejected = transition(p, ProposalState.REJECTED, "no\x1b[31m thanks\n" * 200, T0)
    assert len(rejected.state_reason) <= MAX_REASON and "\x1b" not in rejected.state_reason
    assert proposal_from_dict(proposal_to_dict(rejected)) == rejected  # stored rows read back unchanged


@pytest.mark.parametrize("field", ["quantity", "amount_usd"])
def test_absurd_sizes_are_not_a_valid_proposal(field):
    kw = {"quantity": None, field: 1e308}
    with pytest.raises(InvalidProposal, match="absolute limit"):
        make(**kw)


def test_group_symbols_are_cleaned_and_names_stay_strict():
    from trader.errors import InvalidGroup
    from trader.trading.groups import PositionGroup

    g = PositionGroup("tech", 10.0, ("aapl\x1b[31m", "m\x00sft" + "x" * 100))
    assert g.symbols[0] == "AAPL" and all(len(s) <= 24 and "\x00" not in s for s in g.symbols)
    with pytest.raises(InvalidGroup):
        PositionGroup("te\x1bch", 10.0)


def test_plain_ascii_takes_the_fast_path_with_the_same_result() -> None:
    """Printable ASCII is only stripped and cut: what the character-by-character path gives for the same text with
    a control character in it (which sends it down that path and is removed there)."""
    for value, cap in (("  strategy s1: BUY AAPL on the bar close 101.2 (sig-1-open)  ", 4000), ("abcdef", 4),
                       ("x" * 10, 10), ("", 5), ("  a  b ", 3)):
        for keep in (False, True):
            fast = clean_text(value, cap, keep_newlines=keep)
            assert fast == clean_text(value + "\x00", cap, keep_newlines=keep) == clean_text("\x07" + value, cap,
                                                                                            keep_newlines=keep)
            expected = value.strip()
            assert fast == (expected if len(expected) <= cap else expected[: cap - 1].rstrip() + "…")
