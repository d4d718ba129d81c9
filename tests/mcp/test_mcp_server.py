"""``mmr mcp`` (issue 21) driven by the MCP SDK's own client against one simulated platform.

Most tests connect ``mcp.Client`` to the server in-process (the SDK's in-memory transport); one starts
``mmr mcp --role proposer`` as a subprocess and talks to it over stdio, the way an agent host does.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from trader.mcp.server import RESOURCES, build_server, run_command
from trader.mcp.tools import EXCLUDED_COMMANDS, KINDS
from trader.testing import running_platform


@pytest.fixture(scope="module")
def plat(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("mcp"), with_gateway=True, broker_ready=True) as p:
        yield p


@pytest.fixture(autouse=True)
def _platform_env(plat, monkeypatch):
    """The in-process server reads its config from os.environ: point it at the platform."""
    for key, value in plat.env.items():
        monkeypatch.setenv(key, value)


def cli_json(*args: str) -> Any:
    """``mmr --json ARGS`` in-process, as the operator: the one JSON document it prints."""
    from trader.cli.core import AppContext
    from trader.mmr_cli import run

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        run(["--json", *args], AppContext(json=True))
    return json.loads(buf.getvalue().strip().splitlines()[-1])


def session(role: str, fn) -> Any:
    """Run ``await fn(client)`` with an SDK client connected to an in-process server for ``role``."""

    async def main() -> Any:
        async with Client(build_server(role)) as client:
            return await fn(client)

    return anyio.run(main)


def doc_of(result) -> Any:
    assert len(result.content) == 1 and result.content[0].type == "text"
    return json.loads(result.content[0].text)


def served(tools) -> dict[str, str]:
    """command path -> the tool whose ``command`` enum lists it."""
    return {c: t.name for t in tools for c in t.input_schema["properties"].get("command", {}).get("enum", [])}


def test_operator_tools_serve_the_registry_minus_the_documented_exclusions():
    registry = [c["name"] for c in cli_json("commands", "--full")["commands"]]

    async def calls(client):
        return ((await client.list_tools()).tools, await client.call_tool("describe", {"command": "buy"}),
                await client.call_tool("describe", {}))

    tools, described, everything = session("operator", calls)
    assert [t.name for t in tools] == [k.name for k in KINDS] + ["describe"]
    commands = served(tools)
    assert set(commands) == {p for p in registry if p.split(" ", 1)[0] not in EXCLUDED_COMMANDS}
    assert {"listen", "watch", "up", "down", "mcp", "web"}.isdisjoint(commands)
    assert commands["status"] == "read" and commands["group list"] == "read" and commands["propose"] == "propose"
    assert commands["buy"] == commands["approve"] == commands["cancel"] == "order"
    assert commands["group create"] == commands["risk set"] == "admin" and commands["backtest"] == "research"
    cli_buy = next(c for c in cli_json("commands", "buy")["commands"] if c["name"] == "buy")
    buy = doc_of(described)
    assert not described.is_error and buy["tool"] == "order" and buy["help"] == cli_buy["help"]
    assert set(buy["parameters"]["properties"]) == set(cli_buy["parameters"]["properties"])
    assert buy["parameters"]["required"] == cli_buy["parameters"]["required"]
    listing = doc_of(everything)["tools"]
    assert {c: t for t, cs in listing.items() for c in cs} == commands
    assert listing["order"]["buy"] == cli_buy["help"].split(". ")[0].split("\n")[0].rstrip(".")


def test_every_command_that_takes_a_request_id_is_an_order_or_proposal_or_read_command():
    from trader.mcp.tools import ORDER_COMMANDS, command_specs
    from trader.trading.roles import READ_COMMANDS

    specs = command_specs("operator")
    takes_rid = {p for p, s in specs.items() if "request_id" in s.parameters["properties"]}
    assert ORDER_COMMANDS <= takes_rid  # the explicit list and the registry agree
    for path in takes_rid:
        assert specs[path].tool in ("order", "propose") or path in READ_COMMANDS, path


def test_tool_list_fits_the_token_budget_with_annotations():
    """The budget: the whole tools/list answer ≤ 4,000 tokens, each description ≤ DESCRIPTION_BUDGET, counted with
    ``trader.tools.tokens.conservative_tokens`` (an estimate that errs high) over the tools as JSON."""
    from trader.mcp.tools import DESCRIPTION_BUDGET
    from trader.tools.tokens import conservative_tokens

    for role in ("operator", "proposer", "approver"):
        tools = session(role, lambda c: c.list_tools()).tools
        listed = [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools]
        total = conservative_tokens(listed)
        print(f"{role}: {len(tools)} tools, {len(served(tools))} commands, ~{total} tokens")
        assert total <= 4000, (role, total)
        assert all(conservative_tokens(t.description) <= DESCRIPTION_BUDGET for t in tools), role
        hints = {t.name: t.annotations for t in tools}
        assert hints["read"].read_only_hint is True and hints["read"].destructive_hint is False
        assert hints["read"].idempotent_hint is True and hints["describe"].read_only_hint is True
        if "order" in hints:
            assert hints["order"].read_only_hint is False and hints["order"].destructive_hint is True
            assert hints["order"].open_world_hint is True and hints["order"].idempotent_hint is False
        if "propose" in hints:
            assert hints["propose"].read_only_hint is False and hints["propose"].destructive_hint is False


def test_status_and_snapshot_answer_the_commands_json_documents():
    async def calls(client):
        return (await client.call_tool("read", {"command": "status"}),
                await client.call_tool("read", {"command": "portfolio-snapshot", "args": {}}))

    status, snap = session("operator", calls)
    assert not status.is_error and not snap.is_error
    assert doc_of(status)["all_up"] is True
    assert set(doc_of(snap)) == set(cli_json("portfolio-snapshot"))


def test_errors_are_tool_errors_with_type_and_message():
    async def calls(client):
        return (await client.call_tool("read", {"command": "proposals show", "args": {"proposal_id": 987654}}),
                await client.call_tool("read", {"command": "status", "args": {"no_such_flag": True}}),
                await client.call_tool("read", {"command": "buy", "args": {"symbol": "AAPL", "quantity": 1}}),
                await client.call_tool("read", {"command": "no-such-command"}),
                await client.call_tool("status", {}))

    missing, bad_arg, wrong_tool, unknown, old_name = session("operator", calls)
    assert missing.is_error and bad_arg.is_error
    assert wrong_tool.is_error and "served by tool 'order'" in doc_of(wrong_tool)["error"]["message"]
    assert unknown.is_error and doc_of(unknown)["error"]["type"] == "UsageError"
    assert old_name.is_error and "no tool 'status'" in doc_of(old_name)["error"]["message"]
    assert cli_json("orders") == []  # the misrouted buy placed nothing
    cli_error = cli_json("proposals", "show", "987654")["error"]
    assert doc_of(missing)["error"]["type"] == cli_error["type"]
    assert doc_of(missing)["error"]["message"] == cli_error["message"]
    assert doc_of(bad_arg)["error"]["type"] == "UsageError"
    assert "no_such_flag" in doc_of(bad_arg)["error"]["message"]


def test_proposer_server_proposes_but_cannot_buy_sell_or_approve(plat, monkeypatch):
    async def calls(client):
        tools = (await client.list_tools()).tools
        proposed = await client.call_tool("propose", {"command": "propose", "args": {
            "symbol": "AAPL", "action": "BUY", "quantity": 1, "reasoning": "mcp test"}})
        refused = await client.call_tool("order", {"command": "approve",
                                                   "args": {"proposal_id": doc_of(proposed)["id"]}})
        described = await client.call_tool("describe", {"command": "buy"})
        return tools, proposed, refused, described

    # A stronger key in the environment must not leak into a --role proposer server.
    operator_key = plat.home / "config" / "keys" / "operator.key_secret"
    monkeypatch.setenv("MMR_CLIENT_KEY", str(operator_key))
    tools, proposed, refused, described = session("proposer", calls)
    commands = served(tools)
    assert not any(c.split(" ")[0] in ("buy", "sell", "approve", "resize-positions", "to-market", "cancel-all")
                   or c in ("options buy", "options sell") for c in commands), commands
    assert {"propose", "reject", "status", "proposals"} <= set(commands) and "admin" not in {t.name for t in tools}
    assert not proposed.is_error, doc_of(proposed)
    proposal_id = doc_of(proposed)["id"]
    assert refused.is_error and doc_of(refused)["error"]["type"] == "RoleForbidden"
    assert described.is_error  # not even its schema is served to a proposer

    # The raw attempt, past the CLI's own check: the services refuse it by the proposer key the server uses.
    monkeypatch.setattr("trader.mmr_cli.check_role", lambda args: None)
    code, doc = run_command(["approve", str(proposal_id)], "proposer")
    assert code != 0 and doc["error"]["type"] == "RoleForbidden"
    assert "approve_proposal" in doc["error"]["message"]
    assert cli_json("proposals", "show", str(proposal_id))["state"] == "PENDING"


def test_resources_read_as_json_documents():
    async def reads(client):
        listed = (await client.list_resources()).resources
        return listed, {str(r.uri): await client.read_resource(str(r.uri)) for r in listed}

    listed, contents = session("proposer", reads)
    assert {str(r.uri) for r in listed} == set(RESOURCES)
    docs = {uri: json.loads(r.contents[0].text) for uri, r in contents.items()}
    assert set(docs["mmr://portfolio/snapshot"]) == set(cli_json("portfolio-snapshot"))
    assert "error" not in docs["mmr://risk/report"] and "error" not in docs["mmr://proposals/pending"]


def test_loop_prompts_cover_the_four_steps():
    async def prompts(client):
        listed = [p.name for p in (await client.list_prompts()).prompts]
        return listed, await client.get_prompt("propose")

    listed, propose = session("proposer", prompts)
    assert {"mmr-loop", "monitor", "analyze", "propose", "digest"} <= set(listed)
    text = propose.messages[0].content.text
    assert "## 3. PROPOSE" in text and "## 1. MONITOR" not in text


def test_stdio_subprocess_server_as_an_agent_host_starts_it(plat):
    env = {**os.environ, **plat.env, "MMR_ROLE": "proposer"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "trader.mmr_cli", "mcp", "--role", "proposer"],
                                   env=env)

    async def main():
        async with Client(params) as client:
            commands = served((await client.list_tools()).tools)
            return commands, await client.call_tool("read", {"command": "status"})

    commands, status = anyio.run(main)
    assert "propose" in commands and "approve" not in commands and "buy" not in commands
    assert not status.is_error and doc_of(status)["all_up"] is True


def test_the_cli_path_never_imports_the_mcp_sdk(plat):
    import subprocess

    code = ("import sys, contextlib, io\nfrom trader.mmr_cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['--json', 'status']); main(['--json', 'commands', '--full'])\n"
            "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith(('mcp.', 'mcp_types'))))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **plat.env}, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_streamable_http_server_on_loopback_only(plat):
    import socket
    import subprocess
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **plat.env, "MMR_ROLE": "approver"}
    proc = subprocess.Popen([sys.executable, "-m", "trader.mmr_cli", "mcp", "--role", "approver", "--http",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
                time.sleep(0.05)
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        local = {line.split()[3] for line in listening.splitlines()}  # State Recv-Q Send-Q Local Peer
        assert local == {f"127.0.0.1:{port}"}, listening

        async def main():
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                commands = served((await client.list_tools()).tools)
                return commands, await client.call_tool("read", {"command": "proposals"})

        commands, pending = anyio.run(main)
        assert {"approve", "reject", "proposals"} <= set(commands)
        assert "propose" not in commands and "buy" not in commands
        assert not pending.is_error
    finally:
        proc.terminate()
        proc.wait(timeout=10)
