"""The optional LLM parser of `mmr nl` (issue 18) with the real Anthropic SDK against a local fake of the Messages
API (trader.llm_fake: a tool_use content block, as documented): a strict tool whose schema is the intent schema,
its answer validated like the grammar's, a malformed answer and an unknown symbol refused, `both` refusing when
the two parsers disagree, no key → a clear error, and the key never in any output."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import jsonschema
import pytest

from trader.llm_fake import FakeMessages, serve_fake_messages
from trader.nl.evaluate import load_cases
from trader.nl.intent import INTENT_JSON_SCHEMA
from trader.nl.llm import (
    ORDER_TOOL,
    TOOL_NAME,
    LLMParserError,
    combine,
    llm_parse,
    make_parser,
)
from trader.nl.parser import parse

DEV_SET = Path(__file__).parent / "dev_set.jsonl"

SECRET = "sk-ant-nl-test-3b9e71c2-never-printed"
REF = date(2026, 12, 7)
ES2 = parse("buy 2 ES at 6000", REF)  # the grammar's answer, and the model's when they agree


def _ask(text: str, replies: list, mode: str = "llm") -> dict:
    with serve_fake_messages(replies, key=SECRET) as url:
        return make_parser(mode, api_key=SECRET, model="claude-fake", base_url=url)(text, REF)


def test_the_tool_is_strict_and_its_schema_accepts_every_expected_intent_and_grammar_output():
    assert ORDER_TOOL["strict"] is True and ORDER_TOOL["input_schema"]["required"] == ["order"]
    cases = load_cases(DEV_SET)
    intents = [c["expect"] for c in cases if not c["expect"].get("refuse")]
    assert len(intents) > 150
    tool = jsonschema.Draft202012Validator(ORDER_TOOL["input_schema"])
    for expect in intents:
        tool.validate({"order": expect})
    for c in cases:  # the grammar's answers, intents and refusals alike, fit the tool's schema too
        tool.validate({"order": parse(c["text"], date.fromisoformat(c["ref_date"]))})
    assert not jsonschema.Draft202012Validator(INTENT_JSON_SCHEMA).is_valid({**ES2, "note": "x"})  # extra key


def test_llm_answer_is_the_intent_and_the_request_is_forced_through_the_tool():
    with serve_fake_messages([{"order": ES2}], key=SECRET) as url:
        got = llm_parse("buy 2 ES at 6000", REF, api_key=SECRET, model="claude-fake", base_url=url)
    assert got == ES2
    (body,) = FakeMessages.requests
    assert body["tool_choice"] == {"type": "tool", "name": TOOL_NAME} and body["tools"][0]["strict"] is True
    prompt = body["messages"][0]["content"]
    assert "2026-12-07, a Monday" in prompt and "buy 2 ES at 6000" in prompt and SECRET not in json.dumps(body)


def test_malformed_answers_and_unknown_symbols_are_refusals():
    assert "malformed" in _ask("buy 2 ES", ["I think you want two ES."])["reason"]  # a text block, no tool call
    assert "malformed" in _ask("buy 2 ES", [{"intent": ES2}])["reason"]  # no `order`
    bad = _ask("buy 2 ES", [{"order": {**ES2, "quantity": 2.5}}])
    assert bad["refuse"] and "schema validation" in bad["reason"] and "quantity" in bad["reason"]
    wrong_legs = _ask("buy 2 ES", [{"order": {**ES2, "legs": [{"right": "C", "strike": 6000, "action": "BUY"}]}}])
    assert wrong_legs["refuse"] and "outright" in wrong_legs["reason"]
    unknown = _ask("buy 2 ZZZZ", [{"order": {**ES2, "symbol": "ZZZZ"}}])
    assert unknown["refuse"] and "ZZZZ" in unknown["reason"]
    said_no = _ask("what is ES doing?", [{"order": {"refuse": True, "reason": "a question, not an order"}}])
    assert said_no == {"refuse": True, "reason": "a question, not an order"}


def test_both_agree_or_refuse():
    assert _ask("buy 2 ES at 6000", [{"order": ES2}], "both") == ES2
    off = _ask("buy 2 ES at 6000", [{"order": {**ES2, "quantity": 3, "limit_price": 6001}}], "both")
    assert off["refuse"] and off["reason"] == "the grammar and LLM parsers disagree on quantity, limit_price"
    assert combine(ES2, {"refuse": True, "reason": "unsure"})["reason"] == "the LLM parser refused: unsure"
    assert combine(parse("buy ES", REF), ES2)["refuse"]  # the grammar's refusal stands whatever the model says
    assert _ask("buy 2 ES at 6000", ["not json at all"], "both")["refuse"]


def test_api_errors_and_no_key_are_errors_without_the_key():
    with pytest.raises(LLMParserError, match="ANTHROPIC_API_KEY"):
        make_parser("llm", api_key="", model="m")
    assert make_parser("grammar", api_key="", model="m") is parse
    with serve_fake_messages([500, 500], key=SECRET) as url, pytest.raises(LLMParserError) as err:  # 1 retry
        llm_parse("buy 2 ES", REF, api_key=SECRET, model="m", base_url=url)
    assert "500" in str(err.value) and SECRET not in str(err.value)


# --------------------------------------------------------------------------- the CLI, in process
def _cli(tmp_path, caplog, *args: str, url: str | None = None, key: str = SECRET, parser: str | None = None):
    """`mmr --json nl ARGS` in this process (the SDK is imported once) with a clean environment: only the
    allow-listed variables, a temp MMR_HOME and the fake's settings. Nothing it prints or logs holds the key."""
    import logging
    import os

    from click.testing import CliRunner

    from trader.cli.core import AppContext
    from trader.mmr_cli import run
    from trader.testing import clean_env

    env = {k: None for k in os.environ} | clean_env() | {"MMR_HOME": str(tmp_path / "home")}
    if url is not None:
        env.update(ANTHROPIC_API_KEY=key, ANTHROPIC_BASE_URL=url, ANTHROPIC_MODEL="claude-fake")
    if parser:
        env["NL_PARSER"] = parser
    caplog.set_level(logging.DEBUG)
    with CliRunner().isolation(env=env) as (stdout, stderr, _):
        code = run(["--json", "nl", *args], AppContext(json=True))  # as `mmr` runs it: error documents too
        out, err = stdout.getvalue().decode(), stderr.getvalue().decode()
    assert SECRET not in out + err and SECRET not in caplog.text
    return code, json.loads(out)


def test_cli_parser_modes_from_config_and_flag(tmp_path, caplog):
    with serve_fake_messages([{"order": ES2}, {"order": {**ES2, "action": "SELL"}}], key=SECRET) as url:
        code, doc = _cli(tmp_path, caplog, "buy 2 ES at 6000", "--offline", "--ref-date", "2026-12-07", url=url,
                         parser="both")
        assert code == 0 and doc["parser"] == "both" and doc["intent"] == ES2 and doc["parsers"]["llm"] == ES2
        code, doc = _cli(tmp_path, caplog, "buy 2 ES at 6000", "--propose", "--parser", "both", "--ref-date",
                         "2026-12-07", url=url)
        assert code == 1 and doc["intent"]["reason"] == "the grammar and LLM parsers disagree on action"
        assert doc["parsers"]["grammar"]["action"] == "BUY" and doc["parsers"]["llm"]["action"] == "SELL"
    code, doc = _cli(tmp_path, caplog, "buy 2 ES", "--offline", parser="llm")  # llm configured, no key
    assert code == 1 and doc["error"]["type"] == "LLMParserError" and "ANTHROPIC_API_KEY" in doc["error"]["message"]
    with serve_fake_messages([], key=SECRET) as url:  # a wrong key: the API's 401, the key in no output or log
        code, doc = _cli(tmp_path, caplog, "buy 2 ES", "--offline", "--parser", "llm", url=url, key=SECRET + "x")
    assert code == 1 and "401" in doc["error"]["message"]


def test_cli_eval_with_the_llm_parser(tmp_path, caplog):
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join(json.dumps(c) for c in [
        {"text": "buy 2 ES at 6000", "ref_date": "2026-12-07", "expect": ES2},
        {"text": "buy ES", "ref_date": "2026-12-07", "expect": {"refuse": True}}]) + "\n")
    with serve_fake_messages([{"order": ES2}, {"order": {**ES2, "quantity": 1}}], key=SECRET) as url:
        code, doc = _cli(tmp_path, caplog, "eval", str(cases), "--parser", "llm", "--min-accuracy", "0.9", url=url)
    assert code == 1 and doc["parser"] == "llm" and doc["matched"] == 1 and doc["accuracy"] == 0.5
    assert doc["mismatches"][0]["line"] == 2
