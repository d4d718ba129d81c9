"""MCP tools generated from the CLI's command registry (pure: no MCP SDK here).

Every leaf command that ``mmr --json commands --full`` lists (``trader.cli.meta.walk_commands`` over
``trader.mmr_cli.COMMANDS``) is served, grouped into a few tools by what it does (:data:`KINDS`), so the tool
list stays small (≤ 4k tokens, ``tests/mcp``) however many commands there are:

- a tool call is ``{"command": "group create", "args": {"name": "tech", "budget": 30}}`` — ``command`` is one of
  the tool's commands (an enum), ``args`` the command's parameters as ``mmr --json commands NAME`` gives them;
- the ``describe`` tool answers a command's full parameter schema (or, without ``command``, every command with
  its one-line help), so the host pays for a schema only when it uses the command;
- each tool carries MCP annotations for its kind (read-only, destructive, idempotent, open-world).

A new command in the registry is served with no change here; its kind comes from the role tables
(``trader.trading.roles``) plus :data:`ORDER_COMMANDS` / :data:`PROPOSAL_COMMANDS` below. Not served:

- :data:`EXCLUDED_COMMANDS`: commands that stream, block, or manage processes, which a request/response tool
  cannot serve (and the REPL, which is not a command at all);
- commands the server's role may not run (``trader.trading.roles.is_allowed``, the CLI's role table), so a
  proposer server has no ``buy``, ``sell`` or ``approve`` anywhere.

:func:`to_argv` turns a call's arguments back into the command line the CLI would parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

# Commands no tool serves, and why. A head word excludes its whole group.
EXCLUDED_COMMANDS: Mapping[str, str] = {
    "listen": "streams events until stopped (JSON Lines), not one document",
    "watch": "redraws every few seconds until stopped",
    "up": "starts the services (process management stays with the operator)",
    "down": "stops the services (process management stays with the operator)",
    "mcp": "is this server",
    "web": "serves the dashboard until stopped",
    "setup": "the first-run wizard: writes API keys and switches paper/live, a person's step",
}

# Commands that place, change or cancel orders at the broker (each under a request id, through the services'
# exactly-once path). Besides these, every command that takes a request id and is not a read or a proposal
# command is an order command (a new one is classified by its --request-id, with no edit here).
ORDER_COMMANDS = frozenset({"buy", "sell", "cancel", "cancel-all", "close", "close-all-positions",
                            "resize-positions", "protect", "to-market", "approve", "options buy", "options sell"})
# Commands that create or decide proposals without touching the broker.
PROPOSAL_COMMANDS = frozenset({"propose", "reject", "options propose", "nl propose"})

DESCRIBE = "describe"


@dataclass(frozen=True, slots=True)
class Kind:
    """One tool: the commands of one kind, and the MCP annotations that hold for all of them."""

    name: str
    description: str
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool


KINDS: tuple[Kind, ...] = (
    Kind("read", "Look only: status, account, positions, orders, quotes, proposals, risk, events, strategies.",
         True, False, True, True),
    Kind("propose", "Create or reject trade proposals; nothing reaches the broker until one is approved.",
         False, False, False, False),
    Kind("order", "Place, change or cancel orders at the broker, through the risk gate, exactly once per "
         "request_id (pass the same one to retry).", False, True, False, True),
    Kind("research", "Backtests, sweeps, strategy files, bar history: MMR's local stores, never the account.",
         False, False, False, False),
    Kind("admin", "Change the platform: risk limits, filters, groups, universes, sizing, keys, deployed "
         "strategies.", False, True, False, False),
)
_CALL_NOTE = " Pass command and args (its parameters: see describe)."
DESCRIPTION_BUDGET = 100  # tokens per tool description (trader.tools.tokens.conservative_tokens); tests/mcp checks


def command_kind(path: str, parameters: Mapping[str, Any] | None = None) -> str:
    """The tool (kind name) that serves command ``path`` (with its registry ``parameters`` schema):

    propose: :data:`PROPOSAL_COMMANDS`; read: a read command of the role table (``READ_COMMANDS`` by its exact
    name, or a head word listed there, or a scan); order: :data:`ORDER_COMMANDS` or any other command taking a
    ``request_id``; research: the rest a proposer may run; admin: the rest (operator only)."""
    from trader.trading.roles import READ_COMMANDS, SCAN_COMMANDS, is_allowed, normalize_command

    cmd = normalize_command(path)
    head = cmd.split(" ", 1)[0]
    if cmd in PROPOSAL_COMMANDS or head in PROPOSAL_COMMANDS:
        return "propose"
    takes_request_id = "request_id" in ((parameters or {}).get("properties") or {})
    if cmd in ORDER_COMMANDS or head in ORDER_COMMANDS or (takes_request_id and cmd not in READ_COMMANDS):
        return "order"
    if cmd in READ_COMMANDS or head in SCAN_COMMANDS or (cmd == head and head in READ_COMMANDS):
        return "read"
    return "research" if is_allowed("proposer", cmd) else "admin"


def is_excluded(path: str) -> bool:
    """True if ``path`` (or its group) is in :data:`EXCLUDED_COMMANDS`."""
    return path in EXCLUDED_COMMANDS or path.split(" ", 1)[0] in EXCLUDED_COMMANDS


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One served command: its path, the tool serving it, its help and its schemas."""

    path: str
    tool: str
    help: str
    input_schema: dict[str, Any]  # what `describe` shows: the command's JSON Schema without CLI annotations
    parameters: dict[str, Any]  # the registry's schema, with x-flags / x-positional, to build the command line


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One MCP tool: its kind, description, input schema and the commands it serves."""

    kind: Kind
    description: str
    input_schema: dict[str, Any]
    commands: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.kind.name


def registry() -> list[dict[str, Any]]:
    """Every command of the CLI with its schema: the same list ``mmr --json commands --full`` prints."""
    from trader.cli.meta import walk_commands
    from trader.mmr_cli import cli

    ctx = click.Context(cli)
    return walk_commands(cli, ctx)


def _public_schema(schema: Any) -> Any:
    """``schema`` without the CLI's ``x-`` annotations (flags, positional markers): tokens a host never needs."""
    if isinstance(schema, dict):
        return {k: _public_schema(v) for k, v in schema.items() if not k.startswith("x-")}
    if isinstance(schema, list):
        return [_public_schema(v) for v in schema]
    return schema


def command_specs(role: str, commands: list[dict[str, Any]] | None = None) -> dict[str, CommandSpec]:
    """The commands a server running as ``role`` serves, by path: every registry command that is not excluded
    and that the role may run (``trader.trading.roles.is_allowed``), in registry order."""
    from trader.trading.roles import is_allowed

    specs: dict[str, CommandSpec] = {}
    for cmd in registry() if commands is None else commands:
        path = cmd["name"]
        if is_excluded(path) or not is_allowed(role, path):
            continue
        schema = {**_public_schema(cmd["parameters"]), "additionalProperties": False}
        if not schema.get("required"):
            schema.pop("required", None)
        help_text = cmd["help"] or path
        if cmd.get("aliases"):
            help_text += f" (aliases {', '.join(cmd['aliases'])})"
        specs[path] = CommandSpec(path, command_kind(path, cmd["parameters"]), help_text, schema, cmd["parameters"])
    return specs


def tool_specs(commands: Mapping[str, CommandSpec]) -> list[ToolSpec]:
    """The tools serving ``commands``: one per kind that has any, then ``describe``."""
    tools = []
    for kind in KINDS:
        paths = tuple(p for p, c in commands.items() if c.tool == kind.name)
        if not paths:
            continue
        schema = {"type": "object", "properties": {
            "command": {"type": "string", "enum": list(paths)},
            "args": {"type": "object"}}, "required": ["command"], "additionalProperties": False}
        tools.append(ToolSpec(kind, kind.description + _CALL_NOTE, schema, paths))
    describe = Kind(DESCRIBE, "", True, False, True, False)
    tools.append(ToolSpec(describe, "A command's help and parameters (JSON Schema); without command: every "
                          "command with its one-line help.",
                          {"type": "object", "properties": {"command": {"type": "string"}},
                           "additionalProperties": False}, ()))
    return tools


def _first_sentence(text: str) -> str:
    first = text.split(". ", 1)[0].split("\n", 1)[0].rstrip(".")
    return first if len(first) <= 160 else first[:159] + "…"


def describe(commands: Mapping[str, CommandSpec], command: str | None) -> dict[str, Any]:
    """The ``describe`` tool's answer: one command in full, or every command with the tool serving it."""
    if command is None:
        by_tool: dict[str, dict[str, str]] = {}
        for spec in commands.values():
            by_tool.setdefault(spec.tool, {})[spec.path] = _first_sentence(spec.help)
        return {"tools": by_tool}
    spec = commands[resolve_command(commands, command)]
    return {"command": spec.path, "tool": spec.tool, "help": spec.help, "parameters": spec.input_schema}


def resolve_command(commands: Mapping[str, CommandSpec], command: Any) -> str:
    """The served command path ``command`` names (spaces normalised, CLI aliases resolved); ``click.UsageError``
    naming close matches when there is none."""
    from trader.mmr_cli import ALIASES

    if not isinstance(command, str) or not command.strip():
        raise click.UsageError("command must be the name of an mmr command, e.g. \"status\" or \"group create\"")
    words = command.replace("_", " ").split()
    words[0] = ALIASES.get(words[0], words[0])
    path = " ".join(words)
    if path in commands:
        return path
    import difflib

    close = difflib.get_close_matches(path, list(commands), n=3)
    raise click.UsageError(f"no command {command!r} on this server" + (f"; did you mean {', '.join(close)}?"
                                                                        if close else "; describe lists them"))


def _word(value: Any) -> str:
    """One command-line word for a JSON value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_argv(spec: CommandSpec, arguments: Mapping[str, Any] | None) -> list[str]:
    """The command line (after ``mmr --json``) that runs ``spec`` with ``arguments``.

    Raises ``click.UsageError`` for an argument the command does not have; values are checked by the command
    itself, exactly as on the command line.
    """
    if arguments is not None and not isinstance(arguments, Mapping):
        raise click.UsageError(f"args of {spec.path} must be an object of its parameters")
    arguments = dict(arguments or {})
    props: dict[str, Any] = spec.parameters["properties"]
    unknown = sorted(set(arguments) - set(props))
    if unknown:
        raise click.UsageError(f"{spec.path} has no parameter {', '.join(unknown)}; it takes: "
                               f"{', '.join(props) or 'nothing'}")
    options: list[str] = []
    positionals: list[str] = []
    for name, schema in props.items():
        value = arguments.get(name)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        if schema.get("x-positional"):
            positionals.extend(_word(v) for v in values)
            continue
        flags = schema["x-flags"]
        flag = next((f for f in flags if f.startswith("--")), flags[0])
        if schema.get("type") == "boolean":
            negative = next((f for f in flags if f.startswith("--no-")), None)
            if value:
                options.append(next((f for f in flags if f.startswith("--") and not f.startswith("--no-")),
                                    flags[0]))
            elif negative:
                options.append(negative)
        elif schema.get("x-repeatable"):
            for item in values:
                options.extend([flag, *(_word(v) for v in (item if isinstance(item, list) else [item]))])
        else:
            options.extend([flag, *(_word(v) for v in values)])
    if any(p.startswith("-") for p in positionals):  # e.g. a negative number: not an option
        positionals = ["--", *positionals]
    return [*spec.path.split(), *options, *positionals]
