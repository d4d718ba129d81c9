"""The interactive ``mmr`` prompt: history, completion, and the same commands as the one-shot CLI.

Completion comes from the command registry itself (``COMMANDS``/``ALIASES`` in ``trader.mmr_cli`` and each
click command's parameters — what ``mmr --json commands`` describes), so a new command or flag completes
without a second list. Output is Rich (tables for psnap, pdiff, prisk, session …) unless the line says --json.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Any

from trader.cli.core import AppContext

REPL_WORDS = ("exit", "quit", "help")
GLOBAL_FLAGS = ("--json",)


def _root():
    from trader.mmr_cli import cli

    return cli


def _resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The deepest click command named by ``words`` (subcommands followed through groups) and the words
    after it; (None, words) when the first word names no command."""
    import click

    root = _root()
    ctx = click.Context(root, resilient_parsing=True)
    cmd: Any = None
    rest = list(words)
    group: Any = root
    while rest and isinstance(group, click.Group):
        sub = group.get_command(ctx, rest[0])
        if sub is None:
            break
        cmd, group, rest = sub, sub, rest[1:]
    return cmd, rest


def _choices(param: Any) -> list[str]:
    import click

    return list(param.type.choices) if isinstance(param.type, click.Choice) else []


def complete(words: list[str], prefix: str) -> list[str]:
    """Completions for the word being typed (``prefix``) after the complete ``words`` of a REPL line: command
    names and aliases first, then a group's subcommands, an option's choices (``--tif`` → DAY, GTC, IOC) and
    the command's flags not given yet (a repeatable flag stays offered). Sorted, without duplicates."""
    import click

    from trader.mmr_cli import ALIASES, COMMANDS

    words = [w for w in words if w not in GLOBAL_FLAGS]
    if not words:
        pool: Iterable[str] = [*COMMANDS, *ALIASES, *REPL_WORDS, *GLOBAL_FLAGS]
        return sorted({w for w in pool if w.startswith(prefix)})
    cmd, rest = _resolve(words)
    if cmd is None:
        return []
    options = [p for p in cmd.params if isinstance(p, click.Option) and not p.hidden]
    if rest:  # the value of an option with a fixed set of choices
        last = next((p for p in options if rest[-1] in p.opts and not p.is_flag), None)
        if last is not None:
            return sorted(c for c in _choices(last) if c.lower().startswith(prefix.lower()))
    out: set[str] = set()
    if isinstance(cmd, click.Group) and not rest:
        out.update(cmd.list_commands(click.Context(cmd)))
    given = set(rest)
    for p in options:
        names = list(p.opts) + list(p.secondary_opts)
        if p.multiple or not given.intersection(names):
            out.update(n for n in names if n.startswith("--"))
    out.add("--help")
    return sorted(w for w in out if w.startswith(prefix))


def split_line(text: str) -> tuple[list[str], str]:
    """A line typed so far → (its complete words, the word being typed); quotes are honoured, an unclosed
    quote counts as part of the word being typed."""
    ends_in_space = text[-1:].isspace()
    try:
        words = shlex.split(text)
    except ValueError:  # an open quote: complete the rest plainly
        words = text.split()
    if ends_in_space or not words:
        return words, ""
    return words[:-1], words[-1]


def make_completer():
    """A prompt_toolkit completer over :func:`complete`."""
    from prompt_toolkit.completion import Completer, Completion

    class MMRCompleter(Completer):
        def get_completions(self, document, complete_event):
            words, prefix = split_line(document.text_before_cursor)
            try:
                found = complete(words, prefix)
            except Exception:  # noqa: BLE001 - a broken command module must not kill the prompt
                return
            for word in found:
                yield Completion(word, start_position=-len(prefix))

    return MMRCompleter()


def run_repl(app: AppContext) -> None:
    """Read commands until EOF/``exit``; each line runs exactly like ``mmr <line>``."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    from trader.mmr_cli import run

    history = FileHistory(str(app.paths.config_dir / "cli_history"))
    session: PromptSession = PromptSession(history=history, completer=make_completer(), complete_while_typing=False)
    console = app.console()
    console.print("MMR — type [bold]commands[/] for the list, Tab to complete, [bold]exit[/] to leave.")
    while True:
        try:
            line = session.prompt("mmr> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        line = line.strip()
        if not line:
            continue
        if line in ("exit", "quit"):
            break
        if line == "help":
            line = "commands"
        try:
            args = shlex.split(line)
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            continue
        run(args, AppContext(json=app.json or "--json" in args, _config=app._config, _paths=app._paths))
