"""MCP tools generated from the CLI's command registry (pure: no MCP SDK here).

Every leaf command that ``mmr --json commands --full`` lists (``trader.cli.meta.walk_commands`` over
``trader.mmr_cli.COMMANDS``) becomes one tool, named after its path with spaces as underscores
(``group create`` → ``group_create``), with the command's JSON Schema as input schema. A new command in the
registry is a new tool — there is no second list of commands here, only:

- :data:`EXCLUDED_COMMANDS`: commands that stream, block, or manage processes, which a request/response tool
  cannot serve (and the REPL, which is not a command at all);
- the role filter: a server for role R lists only the commands ``trader.trading.roles.is_allowed(R, path)``
  admits (the CLI's role table), so a proposer server has no ``buy``, ``sell`` or ``approve`` tool.

:func:`to_argv` turns a tool call's arguments back into the command line the CLI would parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

# Commands no tool is made for, and why. A head word excludes its whole group.
EXCLUDED_COMMANDS: Mapping[str, str] = {
    "listen": "streams events until stopped (JSON Lines), not one document",
    "watch": "redraws every few seconds until stopped",
    "up": "starts the services (process management stays with the operator)",
    "down": "stops the services (process management stays with the operator)",
    "mcp": "is this server",
    "web": "serves the dashboard until stopped",
    "setup": "the first-run wizard: writes API keys and switches paper/live, a person's step",
}


def tool_name(path: str) -> str:
    """The MCP tool name of a command path: ``"group create"`` → ``"group_create"``."""
    return path.replace(" ", "_")


def is_excluded(path: str) -> bool:
    """True if ``path`` (or its group) is in :data:`EXCLUDED_COMMANDS`."""
    return path in EXCLUDED_COMMANDS or path.split(" ", 1)[0] in EXCLUDED_COMMANDS


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: its name, the command path it runs, its description and schemas."""

    name: str
    path: str
    description: str
    input_schema: dict[str, Any]  # what the host sees: the command's JSON Schema without CLI annotations
    parameters: dict[str, Any]  # the registry's schema, with x-flags / x-positional, to build the command line


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


def tool_specs(role: str, commands: list[dict[str, Any]] | None = None) -> list[ToolSpec]:
    """The tools of a server running as ``role``: every registry command that is not excluded and that the
    role may run (``trader.trading.roles.is_allowed``), in registry order."""
    from trader.trading.roles import is_allowed

    specs = []
    for cmd in registry() if commands is None else commands:
        path = cmd["name"]
        if is_excluded(path) or not is_allowed(role, path):
            continue
        schema = {**_public_schema(cmd["parameters"]), "additionalProperties": False}
        if not schema.get("required"):
            schema.pop("required", None)
        description = cmd["help"] or path
        if cmd.get("aliases"):
            description += f" (CLI: mmr {path}; aliases {', '.join(cmd['aliases'])})"
        specs.append(ToolSpec(tool_name(path), path, description, schema, cmd["parameters"]))
    return specs


def _word(value: Any) -> str:
    """One command-line word for a JSON value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_argv(spec: ToolSpec, arguments: Mapping[str, Any] | None) -> list[str]:
    """The command line (after ``mmr --json``) that runs ``spec`` with ``arguments``.

    Raises ``click.UsageError`` for an argument the command does not have; values are checked by the command
    itself, exactly as on the command line.
    """
    arguments = dict(arguments or {})
    props: dict[str, Any] = spec.parameters["properties"]
    unknown = sorted(set(arguments) - set(props))
    if unknown:
        raise click.UsageError(f"{spec.name} has no parameter {', '.join(unknown)}; it takes: "
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
