"""The LLM adapter: one Messages API call (Anthropic SDK) that must answer through one named tool.

`strategies generate` and the optional NL order parser both ask for structured output this way: the tool's input
schema is the contract, ``tool_choice`` forces the call, and the caller validates what comes back. Errors name
the HTTP status or the SDK's error type, never the key. Tests point ``base_url`` at `trader.llm_fake`.
"""

from __future__ import annotations

from typing import Any


def forced_tool_call(prompt: str, tool: dict[str, Any], *, api_key: str, model: str, max_tokens: int,
                     error: type[Exception], base_url: str = "", timeout: float = 30.0) -> dict[str, Any]:
    """Ask ``model`` with ``prompt``, forcing a call of ``tool``; the response as plain JSON data.
    Raises ``error`` (the caller's type) when the API answers with an error status or cannot be reached."""
    import anthropic

    client = anthropic.Anthropic(api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=1)
    try:
        message = client.messages.create(model=model, max_tokens=max_tokens, tools=[tool],
                                         tool_choice={"type": "tool", "name": tool["name"]},
                                         messages=[{"role": "user", "content": prompt}])
    except anthropic.APIStatusError as exc:
        raise error(f"the Messages API answered {exc.status_code}: {type(exc).__name__}") from None
    except anthropic.APIError as exc:
        raise error(f"the Messages API call failed: {type(exc).__name__}") from None
    return message.model_dump(mode="json")
