"""The optional LLM parser (issue 18): the Anthropic Messages API with one strict tool (``submit_order``) whose
input schema is the intent schema, so the answer is structured; the answer is then checked by the same
validator as the grammar's (:func:`trader.nl.intent.validate`) and against the known symbols.

``combine`` is the ``both`` mode: the grammar and the model must agree field for field, else the text is refused.
The API key is passed to the SDK and nowhere else: errors name the HTTP status or the exception type, never the
request. The prompt lives in ``prompts/parse_order.md``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from trader.errors import MMRError
from trader.nl.intent import FIELDS, INTENT_JSON_SCHEMA, REFUSAL_JSON_SCHEMA, is_refusal, refusal, validate
from trader.nl.symbols import EQUITY_SYMBOLS, FUTURES_ROOTS

PROMPT_FILE = Path(__file__).parent / "prompts" / "parse_order.md"
TOOL_NAME = "submit_order"
MAX_TOKENS = 1024
PARSERS = ("grammar", "llm", "both")
NO_KEY = ("the LLM parser needs an Anthropic API key: set ANTHROPIC_API_KEY (or anthropic_api_key in trader.yaml), "
          "or use --parser grammar")

ORDER_TOOL: dict[str, Any] = {
    "name": TOOL_NAME,
    "description": "Submit the one order intent read from the text, or a refusal when it is not exactly one "
                   "well-formed order.",
    "strict": True,
    "input_schema": {"type": "object", "properties": {"order": {"anyOf": [INTENT_JSON_SCHEMA,
                                                                          REFUSAL_JSON_SCHEMA]}},
                     "required": ["order"], "additionalProperties": False},
}


class LLMParserError(MMRError):
    """The LLM parser cannot run or its API failed: no API key, an HTTP error, a timeout (the key is never in
    the message). A malformed *answer* is not this error but a refusal."""


def render_prompt(text: str, ref: date, template: str | None = None) -> str:
    """The prompt: the conventions, the reference day and the order text."""
    body = template if template is not None else PROMPT_FILE.read_text(encoding="utf-8")
    return body.format(ref_date=ref.isoformat(), weekday=ref.strftime("%A"), text=text.strip()[:2000],
                       futures_roots=" ".join(sorted(FUTURES_ROOTS)), equities=" ".join(sorted(EQUITY_SYMBOLS)))


def ask_model(prompt: str, *, api_key: str, model: str, base_url: str = "", timeout: float = 30.0) -> dict[str, Any]:
    """One Messages API call forcing the ``submit_order`` tool; the response as plain JSON data."""
    if not api_key:
        raise LLMParserError(NO_KEY)
    from trader.llm import forced_tool_call

    return forced_tool_call(prompt, ORDER_TOOL, api_key=api_key, model=model, max_tokens=MAX_TOKENS,
                            error=LLMParserError, base_url=base_url, timeout=timeout)


def intent_from_response(response: dict[str, Any]) -> dict[str, Any]:
    """The intent (or refusal) in a Messages API response, validated like the grammar's output; a malformed
    answer (no ``submit_order`` call, no ``order``, schema errors, an unknown symbol) is a refusal."""
    calls = [c for c in response.get("content") or [] if c.get("type") == "tool_use" and c.get("name") == TOOL_NAME]
    order = (calls[0].get("input") or {}).get("order") if calls and isinstance(calls[0].get("input"), dict) else None
    if not isinstance(order, dict):
        return refusal("the LLM parser's answer was malformed: no submit_order call with an order")
    if "refuse" in order:  # the model refused: keep its reason, normalised to the refusal shape
        return validate({"refuse": True, "reason": str(order.get("reason") or "refused by the LLM parser")[:300]})
    out = validate(order)
    if is_refusal(out):
        return refusal("the LLM parser's answer " + out["reason"])
    known = FUTURES_ROOTS if out["sec_type"] in ("FUT", "FOP") else EQUITY_SYMBOLS
    if out["symbol"] not in known:
        return refusal(f"the LLM parser's answer names {out['symbol']} as {out['sec_type']}, which MMR does not "
                       "list as such")
    return out


def llm_parse(text: str, ref: date, *, api_key: str, model: str, base_url: str = "") -> dict[str, Any]:
    """Text → intent or refusal through the Messages API (``LLMParserError`` when the API cannot answer)."""
    return intent_from_response(ask_model(render_prompt(text, ref), api_key=api_key, model=model, base_url=base_url))


def combine(grammar: dict[str, Any], llm: dict[str, Any]) -> dict[str, Any]:
    """``both``: the intent when the two parsers agree field for field; otherwise a refusal that says which
    fields (or which parser refused)."""
    if is_refusal(grammar):
        return grammar
    if is_refusal(llm):
        return refusal(f"the LLM parser refused: {llm['reason']}")
    fields = [k for k in FIELDS if grammar.get(k) != llm.get(k)]
    if fields:
        return refusal("the grammar and LLM parsers disagree on " + ", ".join(fields))
    return grammar


def make_parser(mode: str, *, api_key: str, model: str, base_url: str = "",
                seen: dict[str, Any] | None = None) -> Any:
    """A ``(text, ref) -> intent`` function for ``mode`` (grammar | llm | both). ``LLMParserError`` at once when
    the LLM is asked for and no key is set. With ``seen``, each parser's own answer is kept there (``both``)."""
    from trader.nl.parser import parse

    if mode not in PARSERS:
        raise ValueError(f"parser must be one of {', '.join(PARSERS)}, not {mode!r}")
    if mode == "grammar":
        return parse
    if not api_key:
        raise LLMParserError(NO_KEY)

    def run(text: str, ref: date) -> dict[str, Any]:
        llm = llm_parse(text, ref, api_key=api_key, model=model, base_url=base_url)
        if mode == "llm":
            return llm
        grammar = parse(text, ref)
        if seen is not None:
            seen.update(grammar=grammar, llm=llm)
        return combine(grammar, llm)

    return run
