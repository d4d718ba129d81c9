"""Sandboxed strategy loading from `strategies_directory`, and AST inspection without executing.

Paths must be relative and stay inside the directory after resolving symlinks. Each file gets a module
key derived from its relative path and a content hash, so same-named files in different folders do not
clobber each other and a reload always re-imports fresh source.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from trader.errors import StrategyLoadError
from trader.strategy.api import Strategy


def resolve_strategy_path(strategies_dir: str | Path, rel: str | Path) -> Path:
    """Resolve `rel` inside `strategies_dir`; reject absolute paths, `..` and symlinks that lead out."""
    rel_path = Path(rel)
    root = Path(strategies_dir).resolve()
    if rel_path.is_absolute():
        raise StrategyLoadError(f"absolute strategy path not allowed: {rel}")
    if ".." in rel_path.parts:
        raise StrategyLoadError(f"'..' not allowed in strategy path: {rel}")
    if rel_path.parts and rel_path.parts[0] == root.name and not (root / rel_path).exists():
        rel_path = Path(*rel_path.parts[1:])  # accept "strategies/x.py" as typed from the repo root
    full = (root / rel_path).resolve()
    if not full.is_relative_to(root):
        raise StrategyLoadError(f"strategy path leaves {root}: {rel}")
    if not full.is_file():
        raise StrategyLoadError(f"no strategy file {rel} in {root}")
    return full


def source_hash(path: Path) -> str:
    """sha256 of the file's bytes (stored with every backtest run)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_strategy_class(strategies_dir: str | Path, rel: str | Path, class_name: str | None = None) -> type[Strategy]:
    """Import the file fresh under a unique module key and return the named Strategy subclass
    (or the only one when `class_name` is None)."""
    full = resolve_strategy_path(strategies_dir, rel)
    rel_key = full.relative_to(Path(strategies_dir).resolve()).with_suffix("").as_posix().replace("/", "__")
    key = f"mmr_strategies.{rel_key}_{source_hash(full)[:12]}"
    spec = importlib.util.spec_from_file_location(key, full)
    if spec is None or spec.loader is None:
        raise StrategyLoadError(f"cannot import {rel}")
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop(key, None)
    spec.loader.exec_module(module)
    classes = {n: c for n, c in vars(module).items()
               if isinstance(c, type) and issubclass(c, Strategy) and c is not Strategy
               and c.__module__ == module.__name__}
    if class_name is None:
        if len(classes) != 1:
            raise StrategyLoadError(f"{rel}: pass --class, found {sorted(classes)}")
        return next(iter(classes.values()))
    if class_name not in classes:
        raise StrategyLoadError(f"{rel}: no Strategy class {class_name!r}; found {sorted(classes)}")
    return classes[class_name]


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    """What `strategies inspect` reports about one class, from the AST alone."""

    file: str
    class_name: str
    mode: str  # "vectorized", "bar-by-bar" or "panel" (panel_signals: every conId at once)
    params: dict
    doc: str


def inspect_strategies(strategies_dir: str | Path) -> list[StrategyInfo]:
    """List Strategy classes in every .py under the directory by parsing (never executing) the source."""
    root = Path(strategies_dir).resolve()
    out: list[StrategyInfo] = []
    for path in sorted(root.rglob("*.py")):
        if not path.resolve().is_relative_to(root):
            continue  # symlink out of the sandbox
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except SyntaxError:
            continue
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
            if "Strategy" not in bases:
                continue
            params: dict = {}
            methods: set[str] = set()
            for item in node.body:
                if isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name):
                    name = item.targets[0].id
                    if name.isupper():
                        try:
                            params[name] = ast.literal_eval(item.value)
                        except ValueError:
                            params[name] = ast.unparse(item.value)
                elif isinstance(item, ast.FunctionDef):
                    methods.add(item.name)
            out.append(StrategyInfo(
                file=path.relative_to(root).as_posix(), class_name=node.name,
                mode="panel" if "panel_signals" in methods else "vectorized" if "signals" in methods
                else "bar-by-bar",
                params=params, doc=(ast.get_docstring(node) or "").split("\n")[0]))
    return out
