"""MMR's MCP front end: ``mmr mcp`` serves the CLI's command registry as MCP tools (see :mod:`trader.mcp.server`).

:mod:`trader.mcp.tools` (registry → tool specs, arguments → a command line) does not import the MCP SDK;
only :mod:`trader.mcp.server` does, and only ``mmr mcp`` imports it.
"""
