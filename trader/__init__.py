"""MMR: a trading platform for Interactive Brokers, built to be operated by an LLM agent or a person."""

__version__ = "0.1.0"
