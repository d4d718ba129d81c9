"""``commands``: every CLI command with its arguments as JSON Schema, so an agent can discover the CLI."""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output


def _param_schema(param: click.Parameter) -> dict[str, Any]:
    t = param.type
    if isinstance(t, click.Choice):
        schema: dict[str, Any] = {"type": "string", "enum": list(t.choices)}
    elif isinstance(param, click.Option) and param.is_flag:
        schema = {"type": "boolean"}
    elif isinstance(t, click.types.IntParamType):
        schema = {"type": "integer"}
    elif isinstance(t, click.types.FloatParamType):
        schema = {"type": "number"}
    elif isinstance(t, click.types.BoolParamType):
        schema = {"type": "boolean"}
    else:
        schema = {"type": "string"}
    if getattr(param, "multiple", False) or (param.nargs not in (1, None) and param.nargs != 0):
        schema = {"type": "array", "items": schema}
    if isinstance(param, click.Option):
        schema["x-flags"] = list(param.opts) + list(param.secondary_opts)
        if param.help:
            schema["description"] = param.help
        default = param.default
        # Only JSON values: click >= 8.3 marks "no default" with a sentinel object, not None.
        if isinstance(default, (str, int, float, bool)) or (
                isinstance(default, (list, tuple)) and default
                and all(isinstance(x, (str, int, float, bool)) for x in default)):
            schema["default"] = list(default) if isinstance(default, tuple) else default
    else:
        schema["x-positional"] = True
    return schema


def command_schema(path: str, cmd: click.Command) -> dict[str, Any]:
    """Describe one command: name, help and a JSON Schema object of its parameters."""
    props: dict[str, Any] = {}
    required: list[str] = []
    for p in cmd.params:
        if p.name is None or getattr(p, "hidden", False):
            continue
        props[p.name] = _param_schema(p)
        if p.required:
            required.append(p.name)
    return {
        "name": path,
        "help": (cmd.help or "").strip().split("\n\n")[0],
        "aliases": list(getattr(cmd, "mmr_aliases", [])),
        "parameters": {"type": "object", "properties": props, "required": required},
    }


def walk_commands(group: click.Group, ctx: click.Context, prefix: str = "") -> list[dict[str, Any]]:
    """Every leaf command under a group, depth first, with its schema."""
    out = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or getattr(cmd, "hidden", False):
            continue
        path = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            if cmd.invoke_without_command:  # the bare group does something too (e.g. `proposals --all`)
                out.append(command_schema(path, cmd))
            out.extend(walk_commands(cmd, ctx, path + " "))
        else:
            out.append(command_schema(path, cmd))
    return out


def _render(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title="mmr commands")
    table.add_column("command")
    table.add_column("arguments")
    table.add_column("help")
    for c in data["commands"]:
        args = []
        for name, s in c["parameters"]["properties"].items():
            args.append(name.upper() if s.get("x-positional") else s["x-flags"][0])
        table.add_row(c["name"], " ".join(args), c["help"])
    console.print(table)


@click.command()
@click.pass_context
@output(_render)
def commands(ctx: click.Context) -> dict[str, Any]:
    """List every command with its arguments as JSON Schema."""
    root = ctx.find_root()
    return {
        "global_options": {"--json": "print exactly one JSON document on stdout (errors too)"},
        "commands": walk_commands(root.command, root),
    }


__all__ = ["commands", "command_schema", "walk_commands", "AppContext"]
