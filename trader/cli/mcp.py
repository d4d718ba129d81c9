"""``mcp``: serve the CLI's commands to an agent host as an MCP server (see :mod:`trader.mcp.server`).

The MCP SDK is imported only when this command runs, so ``mmr --json status`` never loads it.
"""

from __future__ import annotations

import click

from trader.cli.core import AppContext


@click.command()
@click.option("--role", type=click.Choice(["operator", "proposer", "approver"]), default=None,
              help="Serve as this role with its own key (default: MMR_ROLE / MMR_CLIENT_KEY, like the CLI). "
                   "proposer has no tool that places or approves an order.")
@click.option("--http", "http", is_flag=True, help="Streamable HTTP on 127.0.0.1 instead of stdio.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True,
              help="Port of --http (always bound to 127.0.0.1).")
@click.pass_obj
def mcp(app: AppContext, role: str | None, http: bool, port: int) -> None:
    """Serve MMR's commands as MCP tools (stdio by default) until the host disconnects: one tool per command
    the role may run, plus resources (snapshot, pending proposals, risk report) and the agent-loop prompts."""
    from trader.errors import RoleForbidden
    from trader.trading.roles import role_from_env

    env_role = role_from_env().strip().lower()
    if role is not None and env_role != "operator" and role != env_role:  # never above the caller's own role
        raise RoleForbidden(f"MMR_ROLE is '{env_role}': mmr mcp may serve only that role, not '{role}'")
    from trader.mcp.server import serve

    serve(role or env_role, explicit_role=role is not None, http_port=port if http else None)
