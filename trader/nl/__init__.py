"""Natural-language order intents (issue 18): text → a structured intent (or a refusal) → contracts → proposal.

- ``intent``: the intent schema and its validator — the one contract between parser, eval harness and order builder.
- ``grammar``: the pyparsing scanner that turns text into typed tokens.
- ``parser``: the deterministic parser (tokens → intent, every convention of the README's NL section).
- ``evaluate``: the evaluation harness behind ``mmr nl eval FILE.jsonl``.
- ``orders``: intent → trader_service ``resolve`` selections and ``propose`` / ``propose_preview`` arguments.
- ``llm``: the optional LLM parser (Anthropic Messages API, one strict tool with the intent schema) and ``both``.

Nothing here places an order: at most the CLI turns an intent into a proposal.
"""
