"""``keys``: the CURVE keys that make roles real — ``keys [show]``, ``keys create``, ``keys rotate ROLE|--all``.

The keys live in ``<config dir>/keys`` (see :mod:`trader.messaging.auth`). Output never contains secret material:
paths, roles, public-key fingerprints and file modes only.
"""

from __future__ import annotations

import os
from typing import Any

import click

from trader.cli.core import AppContext, output

ROLES = ("operator", "proposer", "approver", "services")


def _render(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    console.print(f"keys dir: {data['keys_dir']}  (curve: {'on' if data['curve'] else 'OFF'})")
    table = Table("key", "fingerprint", "secret file", "mode")
    for k in data["keys"]:
        table.add_row(k["name"], k["fingerprint"] or "[red]missing[/]", k["secret_file"], k["secret_mode"] or "-")
    console.print(table)
    console.print(f"this shell connects as: {data['this_shell']}")
    for key in ("created", "rotated"):
        if data.get(key):
            console.print(f"{key}: {', '.join(data[key])}")
    if data.get("note"):
        console.print(data["note"])


def _show(app: AppContext, **extra: Any) -> dict[str, Any]:
    from trader.messaging.auth import CLIENT_KEY_ENV, describe_keys, keys_dir

    explicit = os.environ.get(CLIENT_KEY_ENV)
    role = os.environ.get("MMR_ROLE") or "operator"
    return {
        "keys_dir": str(keys_dir(app.paths.config_dir)),
        "curve": app.config.curve,
        "keys": describe_keys(app.paths.config_dir),
        "this_shell": f"{CLIENT_KEY_ENV}={explicit}" if explicit else f"role {role} (MMR_ROLE; {CLIENT_KEY_ENV} unset)",
        **extra,
    }


@click.group(invoke_without_command=True)
@click.pass_context
def keys(ctx: click.Context) -> None:
    """CURVE keys: one per role, checked by every service (no subcommand: show them)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(keys_show)


@keys.command("show")
@click.pass_obj
@output(_render)
def keys_show(app: AppContext) -> dict[str, Any]:
    """Key files, roles, public-key fingerprints and file modes (never the secrets)."""
    return _show(app)


@keys.command("create")
@click.pass_obj
@output(_render)
def keys_create(app: AppContext) -> dict[str, Any]:
    """Create every missing key (the services also do this when they start; existing keys are kept)."""
    from trader.messaging.auth import ensure_keys

    return _show(app, created=ensure_keys(app.paths.config_dir))


@keys.command("rotate")
@click.argument("role", required=False, type=click.Choice(ROLES))
@click.option("--all", "all_roles", is_flag=True, help="Rotate every client key (operator, proposer, approver, services).")
@click.pass_obj
@output(_render)
def keys_rotate(app: AppContext, role: str | None, all_roles: bool) -> dict[str, Any]:
    """Give ROLE a new keypair: running services accept the new key within a second and refuse the old one.

    Copy the new <role>.key_secret to wherever that role runs (e.g. the agent's MMR_CLIENT_KEY file).
    """
    from trader.messaging.auth import rotate_key

    if all_roles == (role is not None):
        raise click.UsageError("give exactly one of ROLE or --all")
    chosen = list(ROLES) if all_roles else [role]
    rotated = [f"{r} ({rotate_key(app.paths.config_dir, r)})" for r in chosen]
    return _show(app, rotated=rotated,
                 note="services accept the new keys without a restart; copy each new <role>.key_secret to where "
                      "that role runs")
