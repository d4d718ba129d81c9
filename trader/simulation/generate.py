"""`strategies generate`: strategy hypotheses from an LLM, each put through the gauntlet, backtested on stored
bars, walk-forward tested and validated — and never deployed (that stays `strategies deploy`).

The prompt lives in `trader/simulation/prompts/generate_strategies.md`; the model answers through one tool
(`submit_strategies`, a JSON Schema) so the answer is structured. Every call is stored in research.duckdb
(`strategy_generations`: request, prompt, model, raw response, outcome) — the API key never is. Each accepted
hypothesis is written to `<strategies_directory>/generated/<generation id>_<name>.py`.

The Deflated Sharpe of each backtested hypothesis is corrected for every hypothesis tried in the generation:
the trial Sharpes are those of the backtested ones, plus a Sharpe of 0 for each one discarded before a backtest.
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trader.errors import MMRError

if TYPE_CHECKING:
    from trader.data.store import DuckStore

PROMPT_FILE = Path(__file__).parent / "prompts" / "generate_strategies.md"
TOOL_NAME = "submit_strategies"
MAX_TOKENS = 8000
DSR_MIN = 0.95
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

SUBMIT_TOOL: dict[str, Any] = {
    "name": TOOL_NAME,
    "description": "Submit the strategy hypotheses, each as a complete Python file.",
    "input_schema": {
        "type": "object",
        "properties": {"strategies": {"type": "array", "items": {
            "type": "object",
            "properties": {"name": {"type": "string", "description": "lower_snake_case, at most 40 characters"},
                           "hypothesis": {"type": "string"}, "style": {"type": "string", "enum": ["vectorized", "bar"]},
                           "code": {"type": "string", "description": "the complete Python file"}},
            "required": ["name", "hypothesis", "style", "code"]}}},
        "required": ["strategies"]},
}


class GenerationError(MMRError):
    """`strategies generate` could not get usable hypotheses: no API key, an API error, or a malformed answer
    (the message says which; the raw answer is stored with the generation)."""


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What to ask for."""

    symbol: str
    timeframe: str
    conditions: str = ""
    n: int = 5


def render_prompt(req: GenerationRequest, template: str | None = None) -> str:
    """The prompt text: the template file with the request filled in."""
    text = template if template is not None else PROMPT_FILE.read_text(encoding="utf-8")
    return text.format(n=req.n, symbol=req.symbol.upper(), timeframe=req.timeframe,
                       conditions=req.conditions or "any (no particular regime)")


def ask_model(prompt: str, *, api_key: str, model: str, base_url: str = "", timeout: float = 120.0) -> dict[str, Any]:
    """One Messages API call forcing the `submit_strategies` tool; the response as plain JSON data.
    GenerationError on a missing key or an API error (the key is never in the message)."""
    if not api_key:
        raise GenerationError("no Anthropic API key: set ANTHROPIC_API_KEY (or anthropic_api_key in trader.yaml)")
    from trader.llm import forced_tool_call

    return forced_tool_call(prompt, SUBMIT_TOOL, api_key=api_key, model=model, max_tokens=MAX_TOKENS,
                            error=GenerationError, base_url=base_url, timeout=timeout)


def parse_hypotheses(response: dict[str, Any]) -> tuple[list[dict[str, str]], list[str]]:
    """The well-formed hypotheses of a response and a problem line for each one refused. GenerationError when
    the response has no `submit_strategies` call with a list of strategies at all."""
    calls = [c for c in response.get("content") or [] if c.get("type") == "tool_use" and c.get("name") == TOOL_NAME]
    items = calls[0].get("input", {}).get("strategies") if calls else None
    if not isinstance(items, list):
        raise GenerationError("malformed answer: no submit_strategies call with a list of strategies")
    good, problems, seen = [], [], set()
    for k, item in enumerate(items):
        if not isinstance(item, dict) or not all(isinstance(item.get(f), str) for f in ("name", "hypothesis",
                                                                                          "code")):
            problems.append(f"#{k}: not an object with string name, hypothesis and code")
            continue
        name = item["name"].strip().lower()
        if not _NAME.match(name) or name in seen:
            problems.append(f"#{k}: bad or repeated name {item['name']!r}")
            continue
        seen.add(name)
        good.append({"name": name, "hypothesis": item["hypothesis"].strip(), "style": str(item.get("style", "")),
                     "code": item["code"]})
    return good, problems


def store_generation(store: DuckStore, gen_id: str, model: str, req: GenerationRequest, prompt: str,
                     response: dict[str, Any] | None, outcome: dict[str, Any]) -> None:
    """Record one generation: request, prompt, model, raw response and outcome (never the key)."""
    store.execute("INSERT OR REPLACE INTO strategy_generations VALUES (?, ?, ?, ?, ?, ?, ?)",
                  [gen_id, datetime.now(UTC), model, json.dumps(asdict(req)), prompt, json.dumps(response) if response is not None else None, json.dumps(outcome, default=str)])


def write_hypothesis(strategies_root: Path, gen_id: str, h: dict[str, str]) -> str:
    """Write a hypothesis' code under generated/; returns its path relative to strategies_directory."""
    rel = f"generated/{gen_id}_{h['name']}.py"
    path = Path(strategies_root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}\n" for line in
                     [f"generated by `mmr strategies generate` ({gen_id}); not deployed",
                      *h["hypothesis"].splitlines()[:20]])
    path.write_text(header + h["code"].rstrip() + "\n", encoding="utf-8")
    return rel


def deflate(backtested: dict[str, list[float]], discarded: int) -> dict[str, float]:
    """Deflated Sharpe of each backtested hypothesis (per-bar returns), against every hypothesis tried."""
    import numpy as np

    from trader.simulation.stats import deflated_sharpe

    def sharpe(r: np.ndarray) -> float:
        sd = float(r.std(ddof=1)) if len(r) > 1 else 0.0
        return float(r.mean()) / sd if sd > 0 else 0.0

    arrays = {k: np.asarray(v, float) for k, v in backtested.items()}
    trials = [sharpe(r) for r in arrays.values()] + [0.0] * discarded
    return {k: float(deflated_sharpe(r, trials)) for k, r in arrays.items()}


def evaluate(hypotheses: list[dict[str, str]], *, gen_id: str, strategies_root: Path,
             gauntlet: Callable[[str], dict[str, Any]],
             backtest_and_validate: Callable[[str], tuple[str, dict[str, Any], list[float]]]) -> dict[str, Any]:
    """Write, gauntlet, backtest and validate each hypothesis; the per-hypothesis rows and which passed.
    `backtest_and_validate(file)` returns (run id, validation verdict, per-bar returns)."""
    rows, returns = [], {}
    for h in hypotheses:
        row: dict[str, Any] = {"name": h["name"], "hypothesis": h["hypothesis"]}
        row["file"] = write_hypothesis(strategies_root, gen_id, h)
        g = gauntlet(row["file"])
        row["gauntlet"] = {"passed": g["passed"], "failed": g["failed"],
                           "problems": [p for s in g["stages"] for p in s["problems"]][:5]}
        if g["passed"]:
            try:
                run_id, verdict, rets = backtest_and_validate(row["file"])
            except Exception as exc:  # noqa: BLE001 - one hypothesis failing to backtest must not end the batch
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
            else:
                row.update(run_id=run_id, validated=verdict["passed"], failed_checks=verdict["failed"],
                           checks={c["check"]: c["value"] for c in verdict["checks"]})
                returns[h["name"]] = rets
        rows.append(row)
    dsr = deflate(returns, discarded=len(hypotheses) - len(returns)) if returns else {}
    for row in rows:
        if row["name"] in dsr:
            row["dsr"] = dsr[row["name"]]
            row["passed"] = bool(row.get("validated")) and dsr[row["name"]] >= DSR_MIN
        else:
            row["passed"] = False
    return {"hypotheses": rows, "tried": len(hypotheses), "passed": [r["name"] for r in rows if r["passed"]]}


def new_generation_id() -> str:
    """A fresh generation id ("g" + 6 hex)."""
    return f"g{uuid.uuid4().hex[:6]}"
