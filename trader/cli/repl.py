"""The interactive ``mmr`` prompt: history, completion, and the same commands as the one-shot CLI."""

from __future__ import annotations

import shlex

from trader.cli.core import AppContext


def run_repl(app: AppContext) -> None:
    """Read commands until EOF/``exit``; each line runs exactly like ``mmr <line>``."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.history import FileHistory

    from trader.mmr_cli import ALIASES, COMMANDS, run

    words = sorted(set(COMMANDS) | set(ALIASES) | {"exit", "quit", "help", "--json"})
    history = FileHistory(str(app.paths.config_dir / "cli_history"))
    session: PromptSession = PromptSession(history=history, completer=WordCompleter(words, sentence=True))
    console = app.console()
    console.print("MMR — type [bold]commands[/] for the list, [bold]exit[/] to leave.")
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
