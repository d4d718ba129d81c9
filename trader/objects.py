"""Domain enums and value types shared by all processes (registered once with the wire codec)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from trader.messaging.codec import wire


@wire
class BrokerState(str, Enum):
    """Connection state of trader_service's broker session."""

    NOT_CONNECTED = "not connected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


@wire
@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """What every service answers to the ``status`` RPC."""

    service: str
    version: str
    pid: int
    started_at: datetime
    uptime_seconds: float
    endpoints: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    ready: bool = True  # False while the service is starting (requests other than ping/status get ServiceStarting)
