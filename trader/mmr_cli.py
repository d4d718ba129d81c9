"""``mmr``: the command line and REPL. Entry point only — commands live in ``trader/cli/``, one module per group.

Commands are imported lazily (by name, on first use), and heavy libraries are imported inside the commands
that need them, so ``mmr --json status`` stays fast: an agent calls it hundreds of times a day.
"""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

import click

from trader.cli.core import EXIT_ERROR, EXIT_OK, AppContext, ExitAfterOutput, report_error

# command name -> "module:attribute". Add new commands here.
COMMANDS: dict[str, str] = {
    "status": "trader.cli.status:status",
    "commands": "trader.cli.meta:commands",
    "up": "trader.cli.services:up",
    "down": "trader.cli.services:down",
    "portfolio": "trader.cli.portfolio:portfolio",
    "positions": "trader.cli.portfolio:positions",
    "orders": "trader.cli.portfolio:orders",
    "trades": "trader.cli.portfolio:trades",
    "snapshot": "trader.cli.portfolio:snapshot",
    "listen": "trader.cli.portfolio:listen",
    "watch": "trader.cli.portfolio:watch",
    "events": "trader.cli.portfolio:events",
    "buy": "trader.cli.trading:buy",
    "sell": "trader.cli.trading:sell",
    "cancel": "trader.cli.trading:cancel",
    "cancel-all": "trader.cli.trading:cancel_all",
    "close": "trader.cli.trading:close",
    "resize-positions": "trader.cli.trading:resize_positions",
    "protect": "trader.cli.trading:protect", "to-market": "trader.cli.trading:to_market",
    "close-all-positions": "trader.cli.trading:close_all_positions",
    "risk": "trader.cli.riskcfg:risk", "filter": "trader.cli.riskcfg:filter_",
    "resolve": "trader.cli.trading:resolve",
    "futures": "trader.cli.futures:futures",
    "options": "trader.cli.options:options", "forex": "trader.cli.forex:forex",
    "history": "trader.cli.history:history",
    "universe": "trader.cli.universe:universe",
    "propose": "trader.cli.proposals:propose",
    "proposals": "trader.cli.proposals:proposals",
    "approve": "trader.cli.proposals:approve",
    "reject": "trader.cli.proposals:reject",
    "group": "trader.cli.groups:group",
    "portfolio-risk": "trader.cli.risk:portfolio_risk",
    "portfolio-snapshot": "trader.cli.risk:portfolio_snapshot",
    "portfolio-diff": "trader.cli.risk:portfolio_diff",
    "session": "trader.cli.risk:session",
    "backtest": "trader.cli.backtest:backtest",
    "backtests": "trader.cli.backtest:backtests",
    "strategies": "trader.cli.strategies:strategies",
    "bt-sweep": "trader.cli.sweep:bt_sweep",
    "sweep": "trader.cli.sweep:sweep",
    "keys": "trader.cli.keys:keys",
    "ideas": "trader.cli.ideas:ideas",
    "scan": "trader.cli.scan:scan",
    "movers": "trader.cli.scan:movers",
    "news": "trader.cli.news:news",
    "depth": "trader.cli.depth:depth",
    "logs": "trader.cli.ops:logs",
    "reconcile": "trader.cli.ops:reconcile",
    "market-hours": "trader.cli.ops:market_hours",
    "verify": "trader.cli.ops:verify",
    "setup": "trader.cli.setup:setup",
    "mcp": "trader.cli.mcp:mcp",
    "web": "trader.cli.web:web",
    "nl": "trader.cli.nl:nl",
}
# Short names (listed in `mmr commands`). None of them names an order action: a typo must never trade.
ALIASES: dict[str, str] = {
    "prisk": "portfolio-risk",
    "psnap": "portfolio-snapshot",
    "pdiff": "portfolio-diff",
    "p": "portfolio",
    "pos": "positions",
    "o": "orders",
    "t": "trades",
    "snap": "snapshot",
    "c": "commands",
    "s": "status",
    "ev": "events",
    "bt": "backtest",
    "bts": "backtests",
    "mh": "market-hours",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        name = ALIASES.get(name, name)
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        cmd = getattr(importlib.import_module(module), attr)
        cmd.mmr_aliases = [a for a, target in ALIASES.items() if target == name]
        return cmd

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else ""
        if name and ALIASES.get(name, name) not in COMMANDS and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS) + list(ALIASES), n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise click.UsageError(f"no such command '{name}'.{hint} Run 'mmr commands' for the list.", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "json_mode", is_flag=True, help="Print exactly one JSON document on stdout (errors too).")
@click.version_option(package_name="mmr", prog_name="mmr")
@click.pass_context
def cli(ctx: click.Context, json_mode: bool) -> None:
    """MMR: trade Interactive Brokers from a shell, a REPL or an LLM agent."""
    app = ctx.find_object(AppContext)
    if app is None:
        ctx.obj = app = AppContext(json=json_mode)
    else:
        app.json = app.json or json_mode
    if ctx.invoked_subcommand is None and not ctx.resilient_parsing:
        if app.json:  # an agent that forgot the command: a usage error document, never the interactive prompt
            raise click.UsageError("no command given: `mmr --json COMMAND ...` (`mmr --json commands` lists them)")
        from trader.cli.repl import run_repl

        run_repl(app)


def run(args: list[str], app: AppContext) -> int:
    """Run one command line (already split) in `app`; return the exit code. Used by `main` and the REPL."""
    try:
        check_role(args)
        cli.main(args=args, prog_name="mmr", standalone_mode=False, obj=app)
        return EXIT_OK
    except click.exceptions.Exit as exc:  # --help / --version
        return exc.exit_code
    except click.exceptions.Abort:
        return EXIT_ERROR
    except ExitAfterOutput as exc:  # the command printed its document; only the exit code is left
        return exc.exit_code
    except Exception as exc:  # every error becomes {"error": …} and a non-zero exit, in one place
        return report_error(exc, app.json or "--json" in args)
    finally:
        app.close()


# Global flags that come before the command name.
_GLOBAL_FLAGS = frozenset({"--json", "-h", "--help", "--version"})


def check_role(args: list[str]) -> None:
    """Refuse the command line unless ``MMR_ROLE`` may run it (unknown roles may run nothing at all)."""
    from trader.errors import RoleForbidden
    from trader.trading.roles import check_allowed, parse_role, role_from_env

    role = role_from_env()
    words = [a for a in args if a not in _GLOBAL_FLAGS]
    if not words:  # the REPL or --help: each REPL line is checked again when it runs
        if parse_role(role) is None:
            raise RoleForbidden(f"unknown role {role!r} (MMR_ROLE): every command is refused")
        return
    name = ALIASES.get(words[0], words[0])
    sub = [words[1]] if len(words) > 1 and not words[1].startswith("-") else []
    if name == "options" and sub and sub[0] in ("buy", "sell", "vertical", "combo") and "--propose" in words:
        sub = ["propose"]  # options buy|sell|vertical|combo --propose only proposes: checked as `options propose`
    elif name == "options" and sub and sub[0] in ("vertical", "combo") and "--preview" in words:
        sub = ["snapshot"]  # --preview places and stores nothing (the read RPC propose_preview): a read, like snapshot
    if name == "strategies" and not sub:
        sub = ["list"]  # the bare group lists the live runtime: `strategies list`, a read
    if name == "nl":  # nl TEXT reads (parse/preview), nl eval reads, nl … --propose proposes
        sub = ["propose" if "--propose" in words else "eval" if sub == ["eval"] else "parse"]
    check_allowed(role, " ".join([name, *sub]))


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    app = AppContext(json="--json" in args)
    code = run(args, app)
    if argv is None:
        if not app.teardown and any(a not in _GLOBAL_FLAGS for a in args):  # one command, not the REPL
            _exit_without_teardown(code)
        # The process ends here: move every live object out of the collector's reach, so the interpreter's
        # shutdown does not walk pandas', pyarrow's and DuckDB's objects in its final collections (~0.15 s of
        # a command that imported them). atexit handlers, thread joins and flushes still run as usual.
        import gc

        gc.freeze()
        sys.exit(code)
    return code


def _exit_without_teardown(code: int) -> NoReturn:
    """End the process as `sys.exit(code)` would — non-daemon threads joined, atexit handlers run, stdout and
    stderr flushed — but without the interpreter's teardown of every module and object that follows (~20-25 ms
    of a fresh sweep that imported pandas, pyarrow and DuckDB). For commands that closed everything they opened
    (`AppContext.teardown` False); nothing they wrote waits for a destructor."""
    import atexit
    import os
    import threading

    try:
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    main()
