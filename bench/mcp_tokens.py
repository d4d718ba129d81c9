"""What `mmr mcp`'s tool list costs an agent host, per role: tools, commands served, tokens.

Counts the ``tools/list`` answer (the tools as JSON, with annotations) the way the budget test in tests/mcp
does — ``trader.tools.tokens.conservative_tokens``, an estimate that errs high — and, for comparison with
rough figures elsewhere, characters / 4. No services are needed: listing tools runs no command.

    .venv/bin/python bench/mcp_tokens.py
"""

from __future__ import annotations

import json

BUDGET = 4000


def main() -> int:
    import anyio
    from mcp import Client

    from trader.mcp.server import build_server
    from trader.tools.tokens import conservative_tokens

    worst = 0
    for role in ("operator", "proposer", "approver"):
        async def listed(role: str = role):
            async with Client(build_server(role)) as client:
                return (await client.list_tools()).tools

        tools = anyio.run(listed)
        docs = [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools]
        commands = sum(len(t.input_schema["properties"].get("command", {}).get("enum", [])) for t in tools)
        tokens = conservative_tokens(docs)
        worst = max(worst, tokens)
        print(f"{role:9s} {len(tools)} tools, {commands:3d} commands: {tokens:5d} tokens (conservative), "
              f"{len(json.dumps(docs, separators=(',', ':'))) // 4:5d} (chars/4)")
    print(f"budget {BUDGET}: {'met' if worst <= BUDGET else 'OVER'}")
    return 0 if worst <= BUDGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
