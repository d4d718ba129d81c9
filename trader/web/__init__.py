"""MMR's dashboard: ``mmr web`` serves a small page on 127.0.0.1 for the people who review an agent's proposals.

- :mod:`trader.web.backend`: the RPC client (the approver role's CURVE key): reads, approve, reject.
- :mod:`trader.web.app`: the Starlette app: login token, CSRF check, pages and partials (Jinja2 templates).
- :mod:`trader.web.charts`: a price line as inline SVG (no plotting library in the web process).

Only ``mmr web`` imports this package (Starlette, Jinja2 and uvicorn are the ``web`` extra).
"""
