"""``up`` and ``down``: start and stop the platform under supervisor."""

from __future__ import annotations

import socket
import time
from typing import Any

import click

from trader.cli.core import AppContext, output


def _render_up(data: dict[str, Any], console: Any) -> None:
    from trader.cli.status import _render

    _render(data["status"], console)
    console.print(f"supervisor {data['supervisor']}: {', '.join(data['programs'])}")


def _gateway_up(app: AppContext) -> bool:
    try:
        with socket.create_connection((app.config.bind_address, app.config.sim_gateway_port), timeout=0.3):
            return True
    except OSError:
        return False


@click.command()
@click.option("--wait", type=float, default=30.0, show_default=True, help="Seconds to wait for health checks.")
@click.option("--broker-wait", type=float, default=15.0, show_default=True,
              help="Then up to this long for the broker connection to be ready (not an error if it is not).")
@click.option("--foreground", is_flag=True, help="Run supervisord in the foreground (containers); does not return.")
@click.option("--tmux", "tmux_session", default=None, metavar="SESSION",
              help="Instead of supervisor, run each process in a window of this tmux session (not restarted).")
@click.pass_obj
@output(_render_up)
def up(app: AppContext, wait: float, broker_wait: float, foreground: bool,
       tmux_session: str | None) -> dict[str, Any]:
    """Start every service under supervisor and wait until they answer."""
    from trader import supervise
    from trader.cli.status import collect_status

    started = time.time()
    if tmux_session:
        info = supervise.start_tmux(app.config, app.paths, tmux_session)
        info["supervisor"] = "not used (tmux)"
    else:
        info = supervise.start(app.config, app.paths, foreground=foreground)
    needs_gateway = "sim_gateway" in info["programs"]

    def check():
        st = collect_status(app, timeout=1.0)
        return st["all_ready"] and (not needs_gateway or _gateway_up(app)), st

    ok, st = supervise.wait_healthy(check, wait)
    if not ok:
        down = [r["service"] for r in st["services"] if not r["up"]]
        if needs_gateway and not _gateway_up(app):
            down.append("sim_gateway")
        reasons = [f"{name}: {why}" for name in down
                   if (why := supervise.failure_reason(app.paths, name, since=started - 1))]
        raise RuntimeError(
            f"services not healthy after {wait:.0f} s: {', '.join(down) or 'not ready'}; "
            f"see logs in {app.paths.log_dir}" + "".join(f"\n{r}" for r in reasons)
        )
    # The services answer before trader_service has connected and reconciled: wait for that too, so the
    # status printed says "ready" rather than a transient "not connected" (a real IB Gateway may be down:
    # then the status says so and `up` still succeeds).
    def broker_ready():
        now = collect_status(app, timeout=1.0)
        return bool((now.get("broker") or {}).get("ready")), now

    _, st = supervise.wait_healthy(broker_ready, broker_wait)
    return {**info, "status": st}


@click.command()
@click.pass_obj
@output(lambda d, c: c.print("stopped: " + (", ".join(d["stopped"]) or "nothing was running")))
def down(app: AppContext) -> dict[str, Any]:
    """Stop every service (and supervisor)."""
    from trader import supervise

    return supervise.stop(app.paths)
