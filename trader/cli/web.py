"""``web``: the dashboard on 127.0.0.1 (see :mod:`trader.web`). Starlette, Jinja2 and uvicorn are imported only
when this command runs, so ``mmr --json status`` never loads them."""

from __future__ import annotations

import click

from trader.cli.core import AppContext


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8766, show_default=True,
              help="Port on 127.0.0.1 (never another interface); 0 picks a free one.")
@click.pass_obj
def web(app: AppContext, port: int) -> None:
    """Serve the dashboard on 127.0.0.1 until stopped (Ctrl-C): account and positions with P&L, open orders,
    pending proposals (sizing, risk preview, approve/reject through the approver key and the exactly-once
    path), strategies, audit events and a price chart per position, refreshed live. Prints the login URL with
    a fresh random token first (with --json one document: url, token, port); every request needs it."""
    import secrets
    import socket

    import uvicorn

    from trader.web.app import create_app
    from trader.web.backend import WEB_ROLE, Backend

    token = secrets.token_urlsafe(24)
    backend = Backend(token)  # loads the approver key now: a missing key is an error before anything listens
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        from trader.errors import PortInUse

        sock.close()
        raise PortInUse(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}): pick another --port (0: a free one)") \
            from None
    bound = sock.getsockname()[1]
    url = f"http://127.0.0.1:{bound}/?token={token}"
    if app.json:
        app.emit({"url": url, "token": token, "port": bound, "role": WEB_ROLE})
    else:
        app.console().print(f"MMR dashboard: [bold]{url}[/] (as {WEB_ROLE}; Ctrl-C stops)")
    server = uvicorn.Server(uvicorn.Config(create_app(backend, token), log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        backend.close()
        sock.close()
