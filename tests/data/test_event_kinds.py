"""``events --kind K`` knows every kind the services write, before the first one is recorded (issue 14: an
agent filtering on ``risk_setting_changed`` got UnknownEventKind until a risk setting had been changed)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from trader.data.events import DOCUMENTED_KINDS, check_event_kind
from trader.errors import UnknownEventKind

TRADER = Path(__file__).resolve().parents[2] / "trader"
# The calls that append to the event log with the kind as their first argument (AuditWriter.record/durable,
# Executioner.audit, the live runtime's record), and the fill/commission writer (kind is its 4th argument).
WRITERS = {"record": 0, "durable": 0, "audit": 0, "_store_with_event": 3}
KIND = re.compile(r"[a-z]+(_[a-z]+)*")


def _written_kinds() -> set[str]:
    kinds: set[str] = set()
    trees = [ast.parse(path.read_text()) for path in TRADER.rglob("*.py")
             if "sim" not in path.relative_to(TRADER).parts[:1]]  # the simulated gateway's own messages
    # EVENT_* constants from every module: one may be defined in one module and written from another
    consts = {t.id: n.value.value for tree in trees for n in ast.walk(tree) if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name) and t.id.startswith("EVENT_")
              and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)}
    for tree in trees:
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            at = WRITERS.get(node.func.attr)
            # submit(self._store_with_event, put, args, kwargs, kind, …): the kind follows the callable
            if node.func.attr == "submit" and node.args and isinstance(node.args[0], ast.Attribute) \
                    and node.args[0].attr == "_store_with_event":
                args, at = node.args[1:], 3
            else:
                args = node.args
            if at is None or len(args) <= at:
                continue
            arg = args[at]
            value = arg.value if isinstance(arg, ast.Constant) else consts.get(getattr(arg, "id", ""))
            if isinstance(value, str) and KIND.fullmatch(value):
                kinds.add(value)
    return kinds


def test_every_kind_the_code_writes_is_known_before_it_is_recorded():
    written = _written_kinds()
    # the scan finds the writers at all: a kind from each (executioner, audit writer, live runtime, fills)
    assert {"order_submitted", "risk_setting_changed", "strategy_signal", "fill", "commission"} <= written
    assert written - DOCUMENTED_KINDS == set()


@pytest.mark.parametrize("kind", ["risk_setting_changed", "sizing_changed", "strategy_proposal", "fill"])
def test_a_real_kind_is_accepted_with_nothing_recorded(kind):
    assert check_event_kind(kind, []) == kind


def test_an_unknown_kind_names_the_known_ones():
    with pytest.raises(UnknownEventKind, match="sizing_changed"):
        check_event_kind("nosuchkind", [])
    assert check_event_kind("custom_kind", ["custom_kind"]) == "custom_kind"  # recorded since: known
