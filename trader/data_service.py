"""data_service: historical data downloads and the DuckDB bar store (issue 7 adds the history commands)."""

from __future__ import annotations

import sys
from typing import Any

from trader.service import Service, run_service


class DataService(Service):
    """Historical bars, universes and the data inventory."""

    name = "data_service"

    def rpc_port(self) -> int:
        return self.config.data_rpc_port

    def details(self) -> dict[str, Any]:
        return {"data_dir": str(self.paths.data_dir)}


def main(argv: list[str] | None = None) -> int:
    return run_service(DataService, argv)


if __name__ == "__main__":
    sys.exit(main())
