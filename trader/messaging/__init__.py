"""MMR messaging: ``codec`` (msgpack + ext types), ``rpc`` (DEALER/ROUTER), ``pubsub`` (PUB/SUB) and ``bus``
(the subscription-routing MessageBus).

Import the submodules directly. This package module imports nothing, so domain code that only needs
``trader.messaging.codec.wire`` does not load zmq.
"""
