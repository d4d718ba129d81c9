"""The Markdown digest of a sweep: what to look at in the morning.

Per job: the top candidates, the strong ones (by an explicit rule), risk flags per candidate, and the CLI
commands to inspect each. `render_digest` is pure (plain dicts in, text out); `write_digest` reads the sweep
from the store and writes ``sweep_<id>_<name>_<YYYYmmddTHHMMSSZ>.md`` into the reports dir.
"""
from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trader.data.store import DuckStore

# The rule for "strong candidate" (also printed in the digest, so the reader knows what it means).
STRONG_MIN_SCORE = 0.0
STRONG_MIN_DSR = 0.95
MIN_TRADES = 30
OVERFIT_DSR = 0.5
FAT_TAIL_KURTOSIS = 3.0
STRONG_RULE = (f"score > {STRONG_MIN_SCORE:g} and DSR ≥ {STRONG_MIN_DSR:g} and trades ≥ {MIN_TRADES}")


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def is_strong(row: dict[str, Any]) -> bool:
    """True when a run meets STRONG_RULE (missing numbers never pass)."""
    score, dsr, trades = _num(row.get("score")), _num(row.get("dsr")), _num(row.get("trade_count"))
    return (score is not None and score > STRONG_MIN_SCORE and dsr is not None and dsr >= STRONG_MIN_DSR
            and trades is not None and trades >= MIN_TRADES)


def risk_flags(row: dict[str, Any]) -> list[str]:
    """Human-readable warnings for one leaderboard row: tail risk, too few trades, likely overfitting."""
    flags = []
    skew, kurt = _num(row.get("skew")), _num(row.get("excess_kurtosis"))
    if skew is not None and kurt is not None and skew < 0 and kurt > FAT_TAIL_KURTOSIS:
        flags.append(f"negative skew ({skew:.2f}) with fat tails (excess kurtosis {kurt:.2f} > "
                     f"{FAT_TAIL_KURTOSIS:g}): rare large losses")
    trades = _num(row.get("trade_count"))
    if trades is not None and trades < MIN_TRADES:
        flags.append(f"few trades ({int(trades)} < {MIN_TRADES}): statistics are weak")
    dsr = _num(row.get("dsr"))
    if dsr is not None and dsr < OVERFIT_DSR:
        flags.append(f"overfitting warning: DSR {dsr:.2f} < {OVERFIT_DSR:g}")
    return flags


def format_params(params: dict[str, Any] | None) -> str:
    """``FAST=5 SLOW=30`` (keys in the grid's order)."""
    return " ".join(f"{k}={v}" for k, v in (params or {}).items()) or "(defaults)"


def _f(v: Any, fmt: str) -> str:
    x = _num(v)
    return "–" if x is None else format(x, fmt)


def _trades(v: Any) -> str:
    x = _num(v)
    return "–" if x is None else str(int(x))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def inspect_commands(run_id: str) -> list[str]:
    """The CLI commands that look deeper at one run."""
    return [f"mmr backtests show {run_id}", f"mmr backtests confidence {run_id}",
            f"mmr backtests validate {run_id}"]


def _table(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| rank | run id | params | score | Sharpe | DSR | return | max dd | trades |",
           "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r.get('rank', '')} | `{r['id']}` | {_cell(format_params(r.get('params')))} | "
                   f"{_f(r.get('score'), '.3f')} | {_f(r.get('sharpe'), '.2f')} | {_f(r.get('dsr'), '.2f')} | "
                   f"{_f(r.get('total_return'), '.1%')} | {_f(r.get('max_drawdown'), '.1%')} | "
                   f"{_trades(r.get('trade_count'))} |")
    return out


def _elapsed(sweep: dict[str, Any]) -> float | None:
    if _num(sweep.get("elapsed_s")) is not None:
        return float(sweep["elapsed_s"])
    try:
        start = datetime.fromisoformat(str(sweep["created_at"]))
        end = datetime.fromisoformat(str(sweep["finished_at"]))
    except (KeyError, TypeError, ValueError):
        return None
    return (end - start).total_seconds()


def _job_line(job: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    conids = ", ".join(str(c) for c in job.get("conids") or [])
    grid = job.get("grid") or {}
    dims = " × ".join(f"{k} {list(v)}" for k, v in grid.items())
    cls = job.get("class_name") or next((r["class_name"] for r in rows if r.get("class_name")), "?")
    n_runs = len(rows)
    line = f"`{job.get('strategy_file', '?')}` {cls} on conIds {conids or '?'}; grid {dims or '?'}; {n_runs} runs"
    if job.get("provenance"):
        line += f"; data: {job['provenance']}"
    simulated = [str(c) for c, src in (job.get("data") or {}).items() if src == "simulated"]
    if simulated:  # a verdict on made-up prices must not read like one on market data
        line += (f"\n\n**Warning: SIMULATED bars** for conId {', '.join(simulated)} (no stored bars for the range): "
                 "these results say nothing about the market. Download history first (`mmr history ib`).")
    # Simulated-gateway history and short coverage (bars present vs the calendar's expected bars).
    for w in job.get("warnings") or []:
        if "SIMULATED prices" not in w:
            line += f"\n\n**Warning:** {_cell(w)}"
    return line


def render_digest(sweep: dict[str, Any], rows: list[dict[str, Any]], top: int = 10) -> str:
    """The digest text for one sweep (`get_sweep` dict) and its leaderboard rows (best first)."""
    sid, name = sweep["id"], sweep.get("name", "")
    lines = [f"# Sweep {name} ({sid})", ""]
    elapsed = _elapsed(sweep)
    lines += [
        f"- status: {sweep.get('status', '?')}",
        f"- started: {sweep.get('created_at', '?')} — finished: {sweep.get('finished_at') or '–'}",
        f"- runs: {sweep.get('done', len(rows))} done, {sweep.get('failed', 0)} failed, "
        f"{sweep.get('total', len(rows))} in the grid",
        f"- elapsed: {'–' if elapsed is None else f'{elapsed:.1f} s'}",
    ]
    if rows:  # sweeps size entries as the backtester does ("backtest"), not as the live runtime ("live")
        lines.append(f"- execution: {', '.join(sorted({str(r.get('execution', 'unknown')) for r in rows}))}")
    if rows:
        best = rows[0]
        lines.append(f"- top run: `{best['id']}` ({best.get('job', '')}: {format_params(best.get('params'))}, "
                     f"score {_f(best.get('score'), '.3f')}, DSR {_f(best.get('dsr'), '.2f')})")
    else:
        lines.append("- top run: none (no run finished)")
    lines += ["", f"Leaderboard: `mmr sweep show {sid}`; heatmap: `mmr sweep show {sid} --plot heatmap.png`", ""]

    jobs = list(sweep.get("jobs") or [])
    known = {j.get("name") for j in jobs}
    # Rows of jobs the sweep record does not list (should not happen) still get a section.
    jobs += [{"name": n} for n in dict.fromkeys(r.get("job") for r in rows) if n not in known]
    for job in jobs:
        job_rows = [r for r in rows if r.get("job") == job.get("name")]
        shown = job_rows[:top]
        lines += [f"## {job.get('name')}", "", _job_line(job, job_rows), ""]
        if not shown:
            lines += ["No finished runs.", ""]
            continue
        lines += [f"### Top {len(shown)} candidates", "", *_table(shown), ""]
        strong = [r for r in job_rows if is_strong(r)]
        lines += ["### Strong candidates", "", f"Rule: {STRONG_RULE}.", ""]
        if strong:
            lines += [f"- `{r['id']}` {format_params(r.get('params'))} (score {_f(r.get('score'), '.3f')}, "
                      f"DSR {_f(r.get('dsr'), '.2f')}, {_trades(r.get('trade_count'))} trades)"
                      for r in strong[:top]]
        else:
            lines.append("None: no run of this job meets the rule.")
        lines += ["", "### Risk flags", "",
                  f"Negative skew with excess kurtosis > {FAT_TAIL_KURTOSIS:g} (rare large losses), fewer than "
                  f"{MIN_TRADES} trades (weak statistics), DSR < {OVERFIT_DSR:g} (overfitting: the Sharpe is "
                  f"likely luck given the number of trials).", ""]
        flagged = [(r, risk_flags(r)) for r in shown]
        if any(f for _, f in flagged):
            lines += [f"- `{r['id']}`: {'; '.join(f)}" for r, f in flagged if f]
        else:
            lines.append("None among the candidates above.")
        lines += ["", "### Inspect", ""]
        lines += [f"- `{r['id']}`: " + ", ".join(f"`{c}`" for c in inspect_commands(r["id"])) for r in shown]
        lines.append("")
    errors = sweep.get("errors") or []
    if errors:
        lines += ["## Failed runs", "", f"{sweep.get('failed', len(errors))} run(s) raised; the last ones:", ""]
        lines += [f"- {_cell(str(e))}" for e in errors[-20:]]
        lines += ["", f"Fix the cause, then rerun only what is missing with `--resume {sid}`.", ""]
    return "\n".join(lines).rstrip() + "\n"


def digest_filename(sweep_id: str, name: str, when: datetime | None = None) -> str:
    """``sweep_<id>_<name>_<YYYYmmddTHHMMSSZ>.md`` (the name made file-safe)."""
    when = when or datetime.now(UTC)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "sweep"
    return f"sweep_{sweep_id}_{safe}_{when.astimezone(UTC):%Y%m%dT%H%M%SZ}.md"


def write_digest(store: DuckStore, sweep_id: str, report_dir: str | Path, top: int = 10) -> Path:
    """Write the digest of a stored sweep into `report_dir`; returns the file's path."""
    from trader.simulation.sweep import get_sweep, leaderboard

    sweep = get_sweep(store, sweep_id)
    rows = leaderboard(store, sweep_id)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / digest_filename(sweep_id, sweep.get("name", ""))
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render_digest(sweep, rows, top), encoding="utf-8")
    tmp.replace(path)  # a reader (or a crash) never sees half a digest
    return path
