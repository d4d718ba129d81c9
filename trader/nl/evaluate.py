"""The evaluation harness behind ``mmr nl eval FILE.jsonl`` (pure; needs no running service).

Each line is ``{"text": …, "ref_date": "YYYY-MM-DD", "expect": intent | {"refuse": true}}``. A case matches
when the parser's output equals the expected intent field for field; an expected refusal matches any refusal,
whatever its reason. Reported: exact-match accuracy, per-field accuracy (over cases where both sides are
intents), every mismatch with a field diff, schema errors of any output, and p50/p99 parse latency.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from trader.nl.intent import FIELDS, is_refusal, schema_errors
from trader.nl.parser import parse


def load_cases(path: str | Path) -> list[dict[str, Any]]:
    cases = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        case = json.loads(line)
        if not isinstance(case, dict) or "text" not in case or "expect" not in case:
            raise ValueError(f"{path}:{n}: a case is {{text, ref_date, expect}}")
        case["line"] = n
        cases.append(case)
    return cases


def diff(expect: dict[str, Any], got: dict[str, Any]) -> dict[str, Any]:
    """Field → {expect, got} for every field that differs."""
    if is_refusal(expect) or is_refusal(got):
        return {"refuse": {"expect": expect, "got": got}}
    return {k: {"expect": expect.get(k), "got": got.get(k)} for k in FIELDS if expect.get(k) != got.get(k)}


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def evaluate(cases: list[dict[str, Any]],
             parser: Callable[[str, date], dict[str, Any]] = parse) -> dict[str, Any]:
    """Run ``parser`` over ``cases`` and report accuracy, per-field accuracy, mismatches and latency."""
    matched, latencies, mismatches, schema_failures = 0, [], [], []
    field_hits = {k: 0 for k in FIELDS}
    field_total = 0
    for case in cases:
        ref = date.fromisoformat(case.get("ref_date") or date.today().isoformat())
        start = time.perf_counter()
        got = parser(case["text"], ref)
        latencies.append((time.perf_counter() - start) * 1000)
        errs = schema_errors(got)
        if errs:
            schema_failures.append({"line": case.get("line"), "text": case["text"], "errors": errs})
        expect = case["expect"]
        ok = is_refusal(got) if is_refusal(expect) else (not errs and got == expect)
        if not is_refusal(expect) and not is_refusal(got):
            field_total += 1
            for k in FIELDS:
                field_hits[k] += got.get(k) == expect.get(k)
        if ok:
            matched += 1
        else:
            mismatches.append({"line": case.get("line"), "text": case["text"], "ref_date": case.get("ref_date"),
                               "diff": diff(expect, got),
                               **({"reason": got["reason"]} if is_refusal(got) else {})})
    total = len(cases)
    return {
        "cases": total, "matched": matched, "accuracy": round(matched / total, 4) if total else 0.0,
        "refusals_expected": sum(is_refusal(c["expect"]) for c in cases),
        "field_accuracy": {k: round(v / field_total, 4) if field_total else None for k, v in field_hits.items()},
        "mismatches": mismatches, "schema_failures": schema_failures,
        "latency_ms": {"p50": round(_percentile(latencies, 50), 3), "p99": round(_percentile(latencies, 99), 3)},
    }
