"""``commands``: every CLI command with its arguments as JSON Schema, so an agent can discover the CLI."""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output

# Descriptions of parameters that click cannot carry itself (arguments have no help text) or that a command
# left without one; keyed by the parameter's name. `test_every_parameter_has_a_description` keeps this complete.
PARAM_DOCS: dict[str, str] = {
    "symbol": "Ticker symbol, e.g. AAPL.",
    "contract": "An option: its OCC symbol (\"AAPL  270319C00250000\") or its underlying with --expiry/--strike/--right.",
    "amount": "Amount to convert.",
    "pair": "Currency pair: EURUSD, EUR.USD, or the base currency (then give the quote currency).",
    "quote_ccy": "Quote currency when the pair is given as two currencies (EUR USD).",
    "src": "Currency to convert from (ISO code, e.g. EUR).",
    "dst": "Currency to convert to (ISO code, e.g. USD).",
    "symbols": "One or more ticker symbols.",
    "tickers": "Ticker symbols.",
    "name": "Name of the group, universe or strategy.",
    "run_id": "A stored backtest run id (see `backtests`).",
    "run_ids": "One or more stored backtest run ids.",
    "sweep_id": "A sweep id (see `sweep list`).",
    "proposal_id": "A proposal id (see `proposals`).",
    "order_id": "A broker order id (see `orders`).",
    "target": "A symbol or a row number from `positions`.",
    "action": "BUY or SELL.",
    "exchange": "Exchange: an ISO MIC (XNYS, XNAS, XLON …) or NYSE, NASDAQ, LSE ….",
    "service": "Service whose log to show (default: every service).",
    "days": "Bars of the last N days.",
    "bar_size": "Bar size: '1 min', '5 mins', '1 hour', '1 day' ….",
    "capital": "Starting capital, USD.",
    "mode": "Backtest engine: vectorized (signals()), bar-by-bar (on_bar()) or auto.",
    "csv_file": "CSV file with a 'symbol' column (optional sec_type, exchange, currency).",
    "description": "Free-text description.",
    "start": "Start time (ISO date or date-time, UTC).",
    "end": "End time (ISO date or date-time, UTC).",
    "fmt": "Output format.",
    "key": "Setting name.",
    "value": "New value.",
    "values": "Values to add or remove.",
    "list_name": "Which list to edit.",
    "kind": "What to scan for.",
    "market": "Market to rank.",
    "preset": "Scan preset.",
    "metric": "Metric to rank or plot by.",
    "limit": "Return at most this many rows.",
    "prev_days": "Days before today to download.",
    "spec_file": "Sweep specification file (YAML).",
    "strategy_file": "Strategy file inside strategies_directory, e.g. ma_crossover.py.",
    "role": "Key role: operator, proposer or approver.",
    "max_orders_per_day": "At most this many orders a day from this strategy.",
    "command": "A command name (or group) to describe in full.",
    "text": "The order in plain words, e.g. \"buy 2 MES at 5000\".",
    "file": "A JSON Lines file of cases: {\"text\", \"ref_date\", \"expect\"} per line.",
}


def _scalar_schema(t: click.ParamType) -> dict[str, Any]:
    """The JSON Schema of one value of click type ``t``, with its bounds."""
    if isinstance(t, click.Choice):
        return {"type": "string", "enum": list(t.choices)}
    if isinstance(t, (click.types.IntParamType, click.types.FloatParamType)):
        schema: dict[str, Any] = {"type": "integer" if isinstance(t, click.types.IntParamType) else "number"}
        for bound, key, open_attr in (("min", "minimum", "min_open"), ("max", "maximum", "max_open")):
            value = getattr(t, bound, None)
            if value is not None:
                schema[("exclusiveM" + key[1:]) if getattr(t, open_attr, False) else key] = value
        return schema
    if isinstance(t, click.types.BoolParamType):
        return {"type": "boolean"}
    if isinstance(t, click.Path):
        return {"type": "string", "format": "path"}
    if t.name == "since":
        return {"type": "string", "format": "ISO time or look-back (30m, 4h, 2d, 1w)"}
    return {"type": "string"}


def _param_schema(param: click.Parameter) -> dict[str, Any]:
    t = param.type
    if isinstance(param, click.Option) and param.is_flag:
        schema: dict[str, Any] = {"type": "boolean"}
    elif isinstance(t, click.Tuple):  # e.g. --bracket TP SL: exactly two numbers
        items = [_scalar_schema(x) for x in t.types]
        schema = {"type": "array", "items": items[0] if all(i == items[0] for i in items) else items,
                  "minItems": len(items), "maxItems": len(items)}
    else:
        schema = _scalar_schema(t)
        if param.nargs not in (1, None, 0):
            schema = {"type": "array", "items": schema}
            if param.nargs > 1:
                schema.update(minItems=param.nargs, maxItems=param.nargs)
    if getattr(param, "multiple", False):
        schema = {"type": "array", "items": schema, "x-repeatable": True}
    help_text = param.help if isinstance(param, click.Option) else None
    description = help_text or PARAM_DOCS.get(param.name or "")
    if description:
        schema["description"] = description
    if isinstance(param, click.Option):
        schema["x-flags"] = list(param.opts) + list(param.secondary_opts)
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


def signature(cmd: dict[str, Any], brief: bool = False) -> str:
    """A one-line usage of a described command: ``SYMBOL [--quantity NUM] …`` (required options unbracketed);
    ``brief``: arguments and required options only, ``[…]`` standing for the optional rest (the listing's
    usage line says so; a shorter marker keeps the whole listing within its token budget)."""
    parts = []
    required = set(cmd["parameters"]["required"])
    optional = False
    for name, s in cmd["parameters"]["properties"].items():
        if brief and not s.get("x-positional") and name not in required:
            optional = True
            continue
        if s.get("x-positional"):
            word = name.upper() + ("…" if s.get("type") == "array" else "")
            parts.append(word if name in required else f"[{word}]")
            continue
        flag = s["x-flags"][0]
        if s.get("type") != "boolean":
            kind = s.get("items", s) if s.get("type") == "array" and not s.get("x-repeatable") else s
            kind = kind.get("items", kind) if s.get("x-repeatable") else kind
            value = {"integer": "INT", "number": "NUM"}.get(kind.get("type") if isinstance(kind, dict) else "", "")
            if isinstance(kind, dict) and "enum" in kind:
                value = "|".join(kind["enum"])
            n = s.get("minItems", 1)
            flag += " " + " ".join([value or "TEXT"] * n)
        parts.append(flag if name in required else f"[{flag}]")
    return " ".join(parts + (["[…]"] if optional else []))


def _render(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title="mmr commands")
    table.add_column("command")
    table.add_column("arguments")
    table.add_column("help")
    for c in data["commands"]:
        if isinstance(c, list):  # the compact listing: [name, usage, help, aliases?]
            c = {"name": c[0], "usage": c[1], "help": c[2], "aliases": c[3] if len(c) > 3 else []}
        args = c["usage"] if "usage" in c else signature(c)
        table.add_row(c["name"] + (f" ({', '.join(c['aliases'])})" if c.get("aliases") else ""), args, c["help"])
    console.print(table)


def _first_sentence(text: str, width: int = 64) -> str:
    head = " ".join(text.split()).split(". ")[0].split("; ")[0].split(": ")[0].rstrip(".")
    return head if len(head) <= width else head[: width - 1] + "…"


@click.command()
@click.argument("command", nargs=-1)
@click.option("--full", is_flag=True, help="Every command with its full JSON Schema (large: prefer COMMAND).")
@click.pass_context
@output(_render)
def commands(ctx: click.Context, command: tuple[str, ...], full: bool) -> dict[str, Any]:
    """Every command in one line each (usage, first sentence of help, aliases); `commands NAME` gives NAME (or
    every command of group NAME) with each parameter as JSON Schema: types, bounds, defaults, descriptions."""
    root = ctx.find_root()
    described = walk_commands(root.command, root)
    if command:
        from trader.mmr_cli import ALIASES

        wanted = " ".join([ALIASES.get(command[0], command[0]), *command[1:]])
        found = [c for c in described if c["name"] == wanted or c["name"].startswith(wanted + " ")]
        if not found:
            import difflib

            close = difflib.get_close_matches(wanted, [c["name"] for c in described], n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise click.UsageError(f"no command {wanted!r}.{hint}")
        return {"commands": found}
    if full:
        return {"global_options": {"--json": "print exactly one JSON document on stdout (errors too)"},
                "commands": described}
    rows = [[c["name"], signature(c, brief=True), _first_sentence(c["help"]), *([c["aliases"]] if c["aliases"] else [])]
            for c in described]
    return {"usage": "mmr [--json] COMMAND ...; […] = optional flags; `mmr --json commands NAME` gives NAME's "
                     "parameters in full",
            "cols": ["name", "usage", "help", "aliases"], "commands": rows}


__all__ = ["commands", "command_schema", "walk_commands", "signature", "AppContext"]
