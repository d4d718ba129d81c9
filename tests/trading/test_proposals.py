"""Proposal state machine: every legal and illegal transition, terminal states, validation, round trips."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trader.errors import InvalidProposal, InvalidProposalTransition, error_from_wire, error_to_wire
from trader.messaging.codec import packb, unpackb
from trader.trading.models import Action, OrderType
from trader.trading.proposals import (
    LEGAL_TRANSITIONS,
    TERMINAL_STATES,
    Proposal,
    ProposalState,
    expire_if_due,
    expires_at_for,
    is_expired,
    is_legal,
    proposal_from_dict,
    proposal_notional,
    proposal_to_dict,
    transition,
    transition_guard,
)
from trader.trading.sizing import SizingResult

T0 = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)
S = ProposalState

EXPECTED_LEGAL = {
    (S.PENDING, S.APPROVED), (S.PENDING, S.REJECTED), (S.PENDING, S.EXPIRED), (S.PENDING, S.FAILED),
    (S.APPROVED, S.EXECUTED), (S.APPROVED, S.FAILED),
    (S.APPROVED, S.PENDING),  # released after a transient refusal (issue 14): nothing was sent
}
ALL_PAIRS = list(itertools.product(ProposalState, ProposalState))


def make(state: ProposalState = S.PENDING, **kw) -> Proposal:
    base = dict(id=7, symbol="AAPL", action=Action.BUY, created_at=T0, quantity=10.0,
                expires_at=T0 + timedelta(hours=1), state=state)
    base.update(kw)
    return Proposal(**base)


def test_table_matches_the_issue():
    legal = {(a, b) for a, targets in LEGAL_TRANSITIONS.items() for b in targets}
    assert legal == EXPECTED_LEGAL
    assert TERMINAL_STATES == {S.REJECTED, S.EXPIRED, S.FAILED, S.EXECUTED}


@pytest.mark.parametrize(("src", "dst"), sorted(EXPECTED_LEGAL, key=str))
def test_every_legal_transition(src, dst):
    p = make(src, version=3)
    q = transition(p, dst, "because", T0 + timedelta(minutes=1), order_ids=[11, 12])
    assert q.state is dst
    assert q.version == 4
    assert q.state_reason == "because"
    assert q.updated_at == T0 + timedelta(minutes=1)
    assert q.order_ids == (11, 12)
    assert p.state is src and p.version == 3  # the original is untouched (frozen)


@pytest.mark.parametrize(("src", "dst"), [pair for pair in ALL_PAIRS if pair not in EXPECTED_LEGAL])
def test_every_illegal_transition(src, dst):
    p = make(src)
    assert not is_legal(src, dst)
    with pytest.raises(InvalidProposalTransition) as info:
        transition(p, dst, "nope", T0)
    msg = str(info.value)
    assert "proposal 7" in msg and src.value in msg and dst.value in msg
    assert info.value.from_state == src.value and info.value.to_state == dst.value


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES, key=str))
def test_terminal_states_are_immutable(terminal):
    assert terminal.terminal
    p = make(terminal)
    for dst in ProposalState:
        with pytest.raises(InvalidProposalTransition, match="final|already"):
            transition(p, dst, "x", T0)


def test_second_approval_says_already_approved():
    approved = transition(make(), S.APPROVED, "ok", T0)
    with pytest.raises(InvalidProposalTransition, match="already APPROVED"):
        transition(approved, S.APPROVED, "again", T0)
    executed = transition(approved, S.EXECUTED, "filled", T0, order_ids=[5])
    with pytest.raises(InvalidProposalTransition, match="EXECUTED is final"):
        transition(executed, S.APPROVED, "again", T0)


def test_error_crosses_the_wire_as_itself():
    with pytest.raises(InvalidProposalTransition) as info:
        transition(make(S.EXECUTED), S.APPROVED, "x", T0)
    back = error_from_wire(unpackb(packb(error_to_wire(info.value))))
    assert type(back) is InvalidProposalTransition
    assert str(back) == str(info.value)


@given(st.lists(st.sampled_from(list(ProposalState)), max_size=12))
def test_random_walks_never_leave_a_terminal_state(steps):
    p = make()
    start, releases = p.version, 0
    for dst in steps:
        before = p
        try:
            p = transition(p, dst, "", T0)
        except InvalidProposalTransition:
            assert p is before
            continue
        assert not before.terminal
        assert p.version == before.version + 1
        releases += (before.state, p.state) == (S.APPROVED, S.PENDING)
    # every applied step but a release (APPROVED → PENDING, and the approval it undid) moves toward a terminal
    # state, which is at most two steps from PENDING
    assert p.version - start <= 2 + 2 * releases


def test_guard_is_the_old_state_and_version():
    p = make(version=4)
    g = transition_guard(p)
    assert (g.id, g.state, g.version) == (7, "PENDING", 4)


def test_expiry():
    p = make()
    assert not is_expired(p, T0 + timedelta(minutes=59))
    assert is_expired(p, T0 + timedelta(hours=1))
    assert expire_if_due(p, T0 + timedelta(minutes=59)) is None
    e = expire_if_due(p, T0 + timedelta(hours=2))
    assert e is not None and e.state is S.EXPIRED and is_expired(e, T0)
    approved = transition(p, S.APPROVED, "", T0)
    assert not is_expired(approved, T0 + timedelta(days=1))  # approved proposals no longer expire
    assert not is_expired(make(expires_at=None), T0 + timedelta(days=365))
    assert expires_at_for(T0, 600) == T0 + timedelta(minutes=10)
    assert expires_at_for(T0, None) is None
    with pytest.raises(ValueError):
        expires_at_for(T0, 0)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(quantity=10.0, amount_usd=1000.0), "not both"),
        (dict(quantity=-1.0), "quantity"),
        (dict(confidence=1.5), "confidence"),
        (dict(order_type=OrderType.LIMIT), "limit price"),
        (dict(limit_price=10.0), "MKT order takes no limit price"),
        (dict(take_profit=120.0), "both"),
        (dict(take_profit=90.0, stop_loss=110.0), "stop-loss must be below"),
        (dict(order_type=OrderType.LIMIT, limit_price=130.0, take_profit=120.0, stop_loss=90.0), "between"),
        (dict(action=Action.SELL, take_profit=120.0, stop_loss=90.0), "stop-loss must be above"),
        (dict(trailing_stop_pct=0.0), "trailing"),
        (dict(symbol="not a ticker!"), "symbol"),
        (dict(expires_at=T0 - timedelta(seconds=1)), "expires_at"),
    ],
)
def test_invalid_proposals_are_refused(kw, match):
    with pytest.raises(InvalidProposal, match=match):
        make(**kw)


def test_valid_bracket_and_normalised_symbol():
    p = make(symbol=" msft ", order_type=OrderType.LIMIT, limit_price=100.0, take_profit=110.0, stop_loss=95.0)
    assert p.symbol == "MSFT"
    s = make(action=Action.SELL, take_profit=90.0, stop_loss=110.0)
    assert s.action is Action.SELL


def test_notional():
    assert proposal_notional(make(quantity=10.0), 50.0) == 500.0
    assert proposal_notional(make(quantity=None, amount_usd=2500.0)) == 2500.0
    assert proposal_notional(make(quantity=3.0, order_type=OrderType.LIMIT, limit_price=20.0), 99.0) == 60.0
    assert proposal_notional(make(quantity=3.0)) is None


def _full() -> Proposal:
    sizing = SizingResult(method="atr", shares=59, usd=2950.0, target_usd=2975.0, formula_usd=2975.0, price=50.0,
                          clamps=("adv_cap",), breakdown="base $5,000 × 1.0 risk = $5,000")
    p = make(quantity=59.0, order_type=OrderType.LIMIT, limit_price=50.0, take_profit=60.0, stop_loss=45.0,
             confidence=0.7, group="tech", reasoning="breakout", sizing=sizing,
             risk_preview={"gross_pct": [10.0, 12.5]})
    return transition(p, S.APPROVED, "ok", T0 + timedelta(minutes=2), order_ids=[101])


def test_dict_round_trip_for_the_store():
    p = _full()
    d = proposal_to_dict(p)
    assert d["state"] == "APPROVED" and d["action"] == "BUY" and d["order_type"] == "LMT"
    assert d["sizing"]["clamps"] == ["adv_cap"]
    back = proposal_from_dict(json.loads(json.dumps(d)))
    assert back == p
    assert back.risk_preview == p.risk_preview


def test_malformed_row_is_a_clear_error():
    with pytest.raises(InvalidProposal, match="malformed"):
        proposal_from_dict({"id": 1, "symbol": "AAPL", "created_at": T0.isoformat()})


def test_wire_round_trip():
    p = _full()
    back = unpackb(packb(p))
    assert back == p and back.sizing == p.sizing and back.state is S.APPROVED


def test_with_unchecked_copies_every_other_field_and_keeps_the_original():
    from trader.trading.proposals import with_unchecked

    p = _full()
    q = with_unchecked(p, risk_preview={"price": 1.0})
    assert q == p and q is not p  # risk_preview is not compared: every other field is p's
    assert q.risk_preview == {"price": 1.0} and p.risk_preview != q.risk_preview
    assert proposal_to_dict(q) == {**proposal_to_dict(p), "risk_preview": {"price": 1.0}}
    r = with_unchecked(p, id=99)
    assert r == dataclasses.replace(p, id=99) and p.id != 99
    with pytest.raises(ValueError, match="quantity"):  # a checked field goes through dataclasses.replace
        with_unchecked(p, quantity=-1.0)


def test_with_sizing_of_is_replace_for_an_alike_order_and_refuses_another():
    """A batch's alike order takes the checked one's quantity, sizing, multiplier and preview as
    ``dataclasses.replace`` would give them (its own words kept), and refuses a proposal that is not alike."""
    from trader.trading.proposals import with_sizing_of

    checked = dataclasses.replace(_full(), multiplier=100.0, risk_preview={"price": 2.0})
    own = dataclasses.replace(checked, reasoning="its own words", request_id="rid-2", confidence=0.3,
                              quantity=1.0, sizing=None, multiplier=1.0, risk_preview=None)
    got = with_sizing_of(own, checked)
    want = dataclasses.replace(own, quantity=checked.quantity, sizing=checked.sizing,
                               multiplier=checked.multiplier, risk_preview=checked.risk_preview)
    assert proposal_to_dict(got) == proposal_to_dict(want) and got == want
    assert got.reasoning == "its own words" and got.request_id == "rid-2" and got.confidence == 0.3
    for other in (dataclasses.replace(own, symbol="MSFT"), dataclasses.replace(own, quantity=None, amount_usd=500.0)):
        with pytest.raises(ValueError, match="not alike"):
            with_sizing_of(other, checked)
