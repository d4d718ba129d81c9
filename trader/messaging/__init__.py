"""MMR messaging: msgpack codec, RPC (DEALER/ROUTER), PUB/SUB and the subscription-routing MessageBus.

Importing this package loads zmq and msgpack but never numpy, pandas or pyarrow (the codec imports those
only when it meets such an object).
"""

from trader.messaging.bus import AsyncMessageBusClient, MessageBusClient, MessageBusServer
from trader.messaging.codec import packb, unpackb, wire
from trader.messaging.pubsub import AsyncSubscriber, Publisher, Subscriber
from trader.messaging.rpc import AsyncRPCClient, RPCClient, RPCServer, rpcmethod

__all__ = [
    "AsyncMessageBusClient",
    "AsyncRPCClient",
    "AsyncSubscriber",
    "MessageBusClient",
    "MessageBusServer",
    "Publisher",
    "RPCClient",
    "RPCServer",
    "Subscriber",
    "packb",
    "rpcmethod",
    "unpackb",
    "wire",
]
