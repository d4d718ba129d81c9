"""``mmr mcp``: the command registry as an MCP server (official ``mcp`` SDK, low-level ``Server``).

- **Tools** (:mod:`trader.mcp.tools`): the CLI commands the role may run, grouped by kind (``read``,
  ``propose``, ``order``, ``research``, ``admin``; each with MCP annotations) plus ``describe``. A call
  ``{"command": "...", "args": {...}}`` runs the command in-process exactly like ``mmr --json …``
  (``trader.mmr_cli.run``: the CLI's role check, the same RPCs, the same risk gate and exactly-once order path in
  the services) and answers its JSON document; an error document ``{"error": {"type", "message", …}}`` comes back
  as a tool error (``isError``) with that same text.
- **Role**: every call runs with ``MMR_ROLE`` set to the server's role, and with ``--role`` given, the role's own
  CURVE key (``<config dir>/keys/<role>.key_secret``; ``MMR_CLIENT_KEY`` is ignored) — so the services refuse
  what the role may not do even if a tool were reachable.
- **Resources**: the latest portfolio snapshot, the pending proposals and the risk report (:data:`RESOURCES`).
- **Prompts**: the MONITOR → ANALYZE → PROPOSE → DIGEST loop, read from ``skills/mmr-loop/SKILL.md``.

Commands run one at a time (a lock): each captures its document from ``sys.stdout`` while it runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from trader.mcp.tools import DESCRIBE, command_specs, describe, registry, resolve_command, to_argv, tool_specs

# uri -> (name, description, command line after `mmr --json`)
RESOURCES: dict[str, tuple[str, str, list[str]]] = {
    "mmr://portfolio/snapshot": ("portfolio-snapshot", "The latest portfolio snapshot: account, positions, "
                                 "P&L, open orders (mmr portfolio-snapshot).", ["portfolio-snapshot"]),
    "mmr://proposals/pending": ("pending-proposals", "Proposals waiting for approval, newest first "
                                "(mmr proposals --limit 50).", ["proposals", "--limit", "50"]),
    "mmr://risk/report": ("risk-report", "The portfolio risk report: concentration, correlation clusters, "
                          "warnings (mmr portfolio-risk --detail).", ["portfolio-risk", "--detail"]),
}

SKILL_FILE = Path(__file__).resolve().parents[2] / "skills" / "mmr-loop" / "SKILL.md"
_MCP_NOTE = ("Through MCP each `mmr --json COMMAND SUB …` line below is a call of the tool that lists COMMAND SUB "
             "(read, propose, order, research, admin) with {\"command\": \"COMMAND SUB\", \"args\": {its flags "
             "by name}}; `describe` gives a command's parameters (e.g. `mmr --json group list` → tool read, "
             "{\"command\": \"group list\"}).\n\n")

INSTRUCTIONS = ("MMR trades an Interactive Brokers account. The tools run the `mmr` CLI's commands, grouped by "
                "kind; each answers the command's JSON document. Orders pass the services' risk gate; a proposer "
                "proposes, a person or an approver approves. Start with read {\"command\": \"status\"}; "
                "describe gives a command's parameters; the mmr-loop prompt is the agent loop.")

_run_lock = threading.Lock()


@contextlib.contextmanager
def _role_env(role: str, explicit_role: bool) -> Iterator[None]:
    """``os.environ`` as the CLI needs it for ``role`` while one command runs (restored afterwards)."""
    saved = {k: os.environ.get(k) for k in ("MMR_ROLE", "MMR_CLIENT_KEY")}
    os.environ["MMR_ROLE"] = role
    if explicit_role:
        os.environ.pop("MMR_CLIENT_KEY", None)  # the role's own key, never a stronger one from the environment
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_command(argv: list[str], role: str, explicit_role: bool = True) -> tuple[int, Any]:
    """Run ``mmr --json ARGV`` in-process as ``role``: (exit code, the JSON document it printed)."""
    from trader.cli.core import AppContext
    from trader.mmr_cli import run

    buf = io.StringIO()
    with _run_lock, _role_env(role, explicit_role), contextlib.redirect_stdout(buf):
        code = run(["--json", *argv], AppContext(json=True))
    lines = buf.getvalue().strip().splitlines()
    if not lines:
        return code, {"error": {"type": "NoOutput", "message": f"mmr {' '.join(argv)} printed nothing"}}
    try:
        return code, json.loads(lines[-1])
    except ValueError:
        return code, {"error": {"type": "BadOutput", "message": lines[-1][:500]}}


def _loop_prompts(skill_file: Path = SKILL_FILE) -> dict[str, tuple[str, str]]:
    """Prompt name -> (description, text): ``mmr-loop`` (the whole loop) and one per phase section of the skill."""
    if not skill_file.exists():
        return {}
    body = re.sub(r"\A---\n.*?\n---\n", "", skill_file.read_text(), flags=re.S).strip()
    prompts = {"mmr-loop": ("One iteration of the agent loop: MONITOR → ANALYZE → PROPOSE → DIGEST.",
                            _MCP_NOTE + body)}
    intro = body.split("\n## ", 1)[0]
    for section in re.split(r"\n(?=## \d+\. )", body)[1:]:
        title = section.splitlines()[0].split(". ", 1)[1].strip()
        prompts[title.lower()] = (f"The {title} step of the agent loop.", f"{_MCP_NOTE}{intro}\n\n{section.strip()}")
    return prompts


class MmrMcp:
    """The tools, resources and prompts of one server, for one role (``operator``, ``proposer``, ``approver``)."""

    def __init__(self, role: str, explicit_role: bool = True) -> None:
        from trader.trading.roles import parse_role

        if parse_role(role) is None:
            raise ValueError(f"unknown role {role!r}: use operator, proposer or approver")
        self.role = role
        self.explicit_role = explicit_role
        self.all_commands = registry()
        self.commands = command_specs(role, self.all_commands)
        self.tools = {t.name: t for t in tool_specs(self.commands)}
        self.prompts = _loop_prompts()

    # ------------------------------------------------------------------ tools
    async def list_tools(self, ctx: ServerRequestContext, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[
            types.Tool(name=t.name, description=t.description, input_schema=t.input_schema,
                       annotations=types.ToolAnnotations(
                           read_only_hint=t.kind.read_only, destructive_hint=t.kind.destructive,
                           idempotent_hint=t.kind.idempotent, open_world_hint=t.kind.open_world))
            for t in self.tools.values()
        ])

    def _refuse(self, tool: str, command: Any) -> Exception:
        """Why ``command`` is not served by ``tool``: another tool serves it, the role may not run it, or it is
        not served over MCP at all."""
        import click

        from trader.trading.roles import check_allowed

        if isinstance(command, str) and command in self.commands:
            return click.UsageError(f"{command!r} is served by tool {self.commands[command].tool!r}, not {tool!r}")
        known = {c["name"] for c in self.all_commands}
        if isinstance(command, str) and command in known:
            try:
                check_allowed(self.role, command)  # not served for this role: say why
            except Exception as exc:  # noqa: BLE001
                return exc
            return PermissionError(f"{command} is not served over MCP (see trader.mcp.tools.EXCLUDED_COMMANDS)")
        try:
            resolve_command(self.commands, command)
        except Exception as exc:  # noqa: BLE001
            return exc
        return click.UsageError(f"no command {command!r}")

    def call(self, name: str, arguments: dict[str, Any] | None) -> tuple[bool, Any]:
        """Run tool ``name`` (``{"command": ..., "args": {...}}``): (is_error, the JSON document)."""
        import click

        from trader.cli.core import error_document

        arguments = arguments or {}
        try:
            tool = self.tools.get(name)
            if tool is None:
                hint = ""
                if name.replace("_", " ") in {c["name"] for c in self.all_commands}:
                    hint = f"; {name} is a command: call the tool serving it with {{\"command\": ...}} (describe)"
                raise click.UsageError(f"no tool {name!r}{hint}; the tools are {', '.join(self.tools)}")
            extra = sorted(set(arguments) - {"command", "args"})
            if extra:
                raise click.UsageError(f"{name} takes command and args, not {', '.join(extra)}")
            command = arguments.get("command")
            if name == DESCRIBE:
                return False, describe(self.commands, command)
            known = command in tool.commands if isinstance(command, str) else False
            if not known:
                try:
                    command = resolve_command(self.commands, command)
                except click.UsageError:
                    raise self._refuse(name, command) from None
                if command not in tool.commands:
                    raise self._refuse(name, command)
            argv = to_argv(self.commands[command], arguments.get("args"))
        except Exception as exc:  # noqa: BLE001 - every refusal is an error document, like the CLI's
            return True, error_document(exc)
        code, doc = run_command(argv, self.role, self.explicit_role)
        return code != 0 or (isinstance(doc, dict) and "error" in doc), doc

    async def call_tool(self, ctx: ServerRequestContext, params: types.CallToolRequestParams) -> types.CallToolResult:
        is_error, doc = await anyio.to_thread.run_sync(self.call, params.name, params.arguments)
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(doc, default=str))],
                                    is_error=is_error)

    # ------------------------------------------------------------------ resources
    async def list_resources(self, ctx: ServerRequestContext, params: Any) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[
            types.Resource(uri=uri, name=name, description=desc, mime_type="application/json")
            for uri, (name, desc, _) in RESOURCES.items()
        ])

    async def read_resource(self, ctx: ServerRequestContext,
                            params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        if uri not in RESOURCES:
            raise MCPError(types.INVALID_PARAMS, f"no such resource {uri!r}")
        argv = RESOURCES[uri][2]
        code, doc = await anyio.to_thread.run_sync(run_command, argv, self.role, self.explicit_role)
        if code != 0 or (isinstance(doc, dict) and "error" in doc):
            err = doc.get("error", {}) if isinstance(doc, dict) else {}
            raise MCPError(types.INTERNAL_ERROR, f"{err.get('type', 'Error')}: {err.get('message', doc)}",
                           data=doc)
        return types.ReadResourceResult(contents=[
            types.TextResourceContents(uri=uri, mime_type="application/json", text=json.dumps(doc, default=str))
        ])

    # ------------------------------------------------------------------ prompts
    async def list_prompts(self, ctx: ServerRequestContext, params: Any) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[types.Prompt(name=n, description=d)
                                                for n, (d, _) in self.prompts.items()])

    async def get_prompt(self, ctx: ServerRequestContext, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        if params.name not in self.prompts:
            raise MCPError(types.INVALID_PARAMS, f"no such prompt {params.name!r}; one of {', '.join(self.prompts)}")
        description, text = self.prompts[params.name]
        return types.GetPromptResult(description=description, messages=[
            types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))
        ])


def build_server(role: str = "operator", explicit_role: bool = True) -> Server:
    """The MCP server for ``role`` (not started): pass it to ``mcp.Client`` in tests, or :func:`serve`."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        mmr_version = version("mmr")
    except PackageNotFoundError:
        mmr_version = "0"
    impl = MmrMcp(role, explicit_role)
    return Server(f"mmr-{role}", version=mmr_version, instructions=INSTRUCTIONS,
                  on_list_tools=impl.list_tools, on_call_tool=impl.call_tool,
                  on_list_resources=impl.list_resources, on_read_resource=impl.read_resource,
                  on_list_prompts=impl.list_prompts, on_get_prompt=impl.get_prompt)


def serve(role: str, explicit_role: bool, http_port: int | None = None) -> None:
    """Serve until the client goes (stdio) or until interrupted (streamable HTTP on 127.0.0.1:``http_port``)."""
    server = build_server(role, explicit_role)
    if http_port is None:
        from mcp.server.stdio import stdio_server

        async def _stdio() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(_stdio)
        return
    import uvicorn

    app = server.streamable_http_app(host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=http_port, log_level="warning")
