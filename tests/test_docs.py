"""CLAUDE.md and skills/ must match the real CLI: every `mmr …` example names a real command and real flags."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from trader.mmr_cli import ALIASES, COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "CLAUDE.md", ROOT / "README.md", *sorted((ROOT / "skills").rglob("*.md"))]
EXAMPLE = re.compile(r"(?:^|[`\s])(?:\.venv/bin/)?mmr((?:\s+[^`#\n|]+)?)")


def _examples() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for line in doc.read_text().splitlines():
            for m in EXAMPLE.finditer(line):
                args = m.group(1).strip()
                if args:
                    out.append((doc.name, args))
    return out


def _resolve(args: list[str]) -> tuple[click.Command, list[str]]:
    ctx = click.Context(cli)
    words = [a for a in args if a != "--json"]
    assert words, "an example must name a command"
    name = ALIASES.get(words[0], words[0])
    assert name in COMMANDS, f"unknown command {words[0]!r}"
    cmd = cli.get_command(ctx, name)
    rest = words[1:]
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        cmd = cmd.get_command(ctx, rest[0])
        rest = rest[1:]
    return cmd, rest


EXAMPLES = _examples()


def test_docs_have_examples():
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize(("doc", "example"), EXAMPLES)
def test_example_names_real_command_and_flags(doc, example):
    try:
        args = shlex.split(example)
    except ValueError:
        pytest.fail(f"{doc}: cannot parse example 'mmr {example}'")
    words = [a for a in args if a != "--json"]
    if not words or not re.fullmatch(r"[a-z][a-z0-9-]*", words[0]):
        return  # prose or a placeholder like `mmr <command> [args]` / `mmr --json …`
    cmd, rest = _resolve(args)
    known = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
    for word in rest:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            assert flag in known, f"{doc}: 'mmr {example}': {cmd.name} has no flag {flag}"
