"""CURVE keys and the ZAP handler that turns a connecting key into a role.

Every MMR server socket (RPC ROUTER, PUB, bus ROUTER) can run as a ZeroMQ CURVE server: traffic is encrypted and
only clients holding one of the install's client keys may connect. The ZAP handler (pyzmq's
:class:`zmq.auth.thread.ThreadAuthenticator`) maps the client's public key to its role and hands the role to the
server as the message's ``User-Id`` (``"proposer:<z85 key>"``); the RPC server then checks the role against the
method table in :mod:`trader.trading.roles`.

Key files live in ``<config dir>/keys`` (mode 0700), written with ``zmq.auth.create_certificates``::

    server.key            server.key_secret        the install's server keypair
    operator.key          operator.key_secret      one client keypair per role
    proposer.key          proposer.key_secret
    approver.key          approver.key_secret
    services.key          services.key_secret      the services' own key, when they call each other

``*.key`` hold only a public key; ``*.key_secret`` (mode 0600) hold the secret key and, in their metadata, the
server's public key — so one ``proposer.key_secret`` file is all an agent needs (``MMR_CLIENT_KEY``).
Rotating a role's key replaces its two files; servers re-read them when they change, so the new key is accepted
and the old one refused without a restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from trader.errors import Unauthenticated

__all__ = [
    "CLIENT_ROLES",
    "SERVICES_ROLE",
    "CLIENT_KEY_ENV",
    "ClientKey",
    "ServerSecurity",
    "keys_dir",
    "ensure_keys",
    "rotate_key",
    "load_client_key",
    "client_key_from_env",
    "key_table",
    "fingerprint",
    "describe_keys",
]

log = logging.getLogger("trader.messaging.auth")

SERVICES_ROLE = "services"
# Identities that get a client keypair: the three CLI roles and the services themselves (full rights).
CLIENT_ROLES = ("operator", "proposer", "approver", SERVICES_ROLE)
CLIENT_KEY_ENV = "MMR_CLIENT_KEY"
SERVER = "server"
# How often (at most) a running RPC server re-checks the key files for a rotation.
RECHECK_SECONDS = 1.0

_META_RE = re.compile(rb'^\s*([\w-]+)\s*=\s*"([^"]*)"\s*$')


def keys_dir(config_dir: Path) -> Path:
    """Where an install keeps its CURVE keys."""
    return Path(config_dir) / "keys"


def fingerprint(public_key: bytes) -> str:
    """A short, non-secret name for a public key (first 16 hex digits of its SHA-256)."""
    import hashlib

    return hashlib.sha256(public_key).hexdigest()[:16]


@contextlib.contextmanager
def _locked(key_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``key_dir`` (two processes starting at once create the keys once)."""
    import fcntl  # key creation only: the CLI's hot path just reads a key file

    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(key_dir, 0o700)
    with open(key_dir / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_keypair(key_dir: Path, name: str, metadata: dict[str, str] | None = None) -> None:
    """Create ``name.key`` / ``name.key_secret`` in a private temp dir, then rename them into place."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=key_dir))
    try:
        public, secret = zmq.auth.create_certificates(tmp, name, metadata=metadata)
        os.chmod(secret, 0o600)
        os.chmod(public, 0o644)
        # secret first: a client never finds a public key without its secret
        os.replace(secret, key_dir / f"{name}.key_secret")
        os.replace(public, key_dir / f"{name}.key")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _server_public(key_dir: Path) -> bytes:
    public, _ = zmq.auth.load_certificate(key_dir / f"{SERVER}.key")
    return public


def _client_metadata(key_dir: Path, role: str) -> dict[str, str]:
    return {"role": role, "server-key": _server_public(key_dir).decode()}


def ensure_keys(config_dir: Path) -> list[str]:
    """Create the keys dir and every missing keypair (idempotent, safe against concurrent starts).

    Returns the names created (empty when everything existed).
    """
    key_dir = keys_dir(config_dir)
    created: list[str] = []
    with _locked(key_dir):
        if not (key_dir / f"{SERVER}.key_secret").exists():
            _write_keypair(key_dir, SERVER)
            created.append(SERVER)
        for role in CLIENT_ROLES:
            if not (key_dir / f"{role}.key_secret").exists():
                _write_keypair(key_dir, role, _client_metadata(key_dir, role))
                created.append(role)
    if created:
        log.info("created CURVE keys in %s: %s", key_dir, ", ".join(created))
    return created


def rotate_key(config_dir: Path, role: str) -> str:
    """Replace ``role``'s client keypair; return the new public key's fingerprint.

    Running servers accept the new key and refuse the old one from their next check (within about a second).
    """
    if role not in CLIENT_ROLES:
        raise ValueError(f"unknown key {role!r}: one of {', '.join(CLIENT_ROLES)}")
    ensure_keys(config_dir)
    key_dir = keys_dir(config_dir)
    with _locked(key_dir):
        _write_keypair(key_dir, role, _client_metadata(key_dir, role))
        public, _ = zmq.auth.load_certificate(key_dir / f"{role}.key")
    log.info("rotated the %s key in %s", role, key_dir)
    return fingerprint(public)


# --------------------------------------------------------------------------- client side
@dataclass(frozen=True, slots=True)
class ClientKey:
    """What a client socket needs for CURVE: its keypair and the server's public key (all z85)."""

    role: str
    public: bytes
    secret: bytes
    server_public: bytes
    path: str

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client with this key (before connect)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_serverkey = self.server_public

    def __repr__(self) -> str:  # never print the secret
        return f"ClientKey(role={self.role!r}, public={fingerprint(self.public)}, path={self.path!r})"


def _metadata(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with open(path, "rb") as fh:
        for line in fh:
            m = _META_RE.match(line)
            if m:
                out[m.group(1).decode()] = m.group(2).decode()
    return out


def load_client_key(path: str | os.PathLike[str]) -> ClientKey:
    """Load a ``<role>.key_secret`` file; Unauthenticated (naming the file and ``mmr keys``) if unusable."""
    path = Path(path).expanduser()
    try:
        public, secret = zmq.auth.load_certificate(path)
        meta = _metadata(path)
    except (OSError, ValueError) as exc:
        raise Unauthenticated(
            f"no usable client key at {path} ({exc.__class__.__name__}: {exc}); "
            f"'mmr keys' shows the keys and 'mmr keys create' makes missing ones"
        ) from None
    if secret is None:
        raise Unauthenticated(f"{path} holds no secret key: use a '<role>.key_secret' file (see 'mmr keys')")
    server = meta.get("server-key", "").encode()
    if not server:
        try:
            server = _server_public(path.parent)
        except (OSError, ValueError):
            raise Unauthenticated(f"{path} does not name the server key and no server.key is next to it "
                                  f"(see 'mmr keys')") from None
    role = meta.get("role") or path.name.split(".", 1)[0]
    return ClientKey(role=role, public=public, secret=secret, server_public=server, path=str(path))


def client_key_from_env(config_dir: Path, env: Mapping[str, str] | None = None) -> ClientKey:
    """The key this process connects with: ``MMR_CLIENT_KEY`` (a file), else ``<keys>/<MMR_ROLE>.key_secret``."""
    env = os.environ if env is None else env
    explicit = env.get(CLIENT_KEY_ENV)
    if explicit:
        return load_client_key(explicit)
    role = (env.get("MMR_ROLE") or "operator").strip().lower()
    if role not in CLIENT_ROLES:
        raise Unauthenticated(f"unknown role {role!r} (MMR_ROLE): no key to connect with")
    path = keys_dir(config_dir) / f"{role}.key_secret"
    if not path.exists():
        raise Unauthenticated(
            f"no client key for role '{role}': looked in {path} ({CLIENT_KEY_ENV} is not set); the services "
            f"create keys when they start, 'mmr keys create' makes them now, 'mmr keys' shows them"
        )
    return load_client_key(path)


# --------------------------------------------------------------------------- server side
def key_table(key_dir: Path) -> dict[bytes, str]:
    """z85 public key -> role, for every ``<role>.key`` present in ``key_dir``."""
    table: dict[bytes, str] = {}
    for role in CLIENT_ROLES:
        try:
            public, _ = zmq.auth.load_certificate(key_dir / f"{role}.key")
        except (OSError, ValueError):
            continue
        table[public] = role
    return table


class _KeyTable:
    """The accepted client keys, re-read when a key file changes (thread-safe: ZAP thread and event loop)."""

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = key_dir
        self._lock = threading.Lock()
        self._signature: tuple[Any, ...] | None = None
        self._table: dict[bytes, str] = {}
        self._checked = 0.0

    def _stat(self) -> tuple[Any, ...]:
        sig = []
        for role in CLIENT_ROLES:
            try:
                st = os.stat(self.key_dir / f"{role}.key")
                sig.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except OSError:
                sig.append(None)
        return tuple(sig)

    def refresh(self) -> dict[bytes, str]:
        """Re-read the key files if any changed; return the table."""
        with self._lock:
            sig = self._stat()
            if sig != self._signature:
                self._table = key_table(self.key_dir)
                self._signature = sig
            self._checked = time.monotonic()
            return self._table

    def current(self) -> dict[bytes, str]:
        """The table, re-checked at most every RECHECK_SECONDS (cheap enough for every request)."""
        if time.monotonic() - self._checked > RECHECK_SECONDS:
            return self.refresh()
        return self._table

    # zmq.auth credentials provider: called by the ZAP handler for each new connection
    def callback(self, domain: str, z85_key: bytes) -> bool:
        return z85_key in self.refresh()


def _role_authenticator(context: zmq.Context) -> Any:
    """pyzmq's ZAP thread, reporting ``"<role>:<z85 key>"`` as the User-Id of an accepted CURVE client.
    (Built on first use: clients never need it, and the CLI imports this module on every call.)"""
    from zmq.auth.thread import ThreadAuthenticator
    from zmq.utils import z85

    class RoleAuthenticator(ThreadAuthenticator):
        def __init__(self) -> None:
            super().__init__(context=context, log=logging.getLogger("trader.messaging.zap"))
            self.tables: dict[str, _KeyTable] = {}
            self.users = 0

        def curve_user_id(self, client_public_key: bytes) -> str:
            key = z85.encode(client_public_key)
            for table in self.tables.values():  # one table per key dir served from this context (tests: several)
                role = table.refresh().get(key)
                if role is not None:
                    return f"{role}:{key.decode()}"
            return f":{key.decode()}"

    return RoleAuthenticator()


# One ZAP handler per zmq context (libzmq binds it at a fixed inproc address), shared by every server socket
# of that context; each key dir is a ZAP domain of its own.
_AUTHENTICATORS: dict[int, Any] = {}
_AUTH_LOCK = threading.Lock()


def _domain(key_dir: Path) -> str:
    import hashlib

    return "mmr-" + hashlib.sha256(str(key_dir.resolve()).encode()).hexdigest()[:16]


class ServerSecurity:
    """CURVE for the server sockets of one install (``<config dir>/keys``): ``secure(sock)`` before bind.

    ``role_of(user_id)`` resolves a request's ``User-Id`` to a role, or raises :class:`Unauthenticated` when the
    key has been rotated away since the connection was made.
    """

    def __init__(self, config_dir: Path) -> None:
        self.key_dir = keys_dir(config_dir)
        ensure_keys(config_dir)
        public, secret = zmq.auth.load_certificate(self.key_dir / f"{SERVER}.key_secret")
        if secret is None:
            raise Unauthenticated(f"{self.key_dir / 'server.key_secret'} holds no secret key")
        self.public = public
        self._secret = secret
        self.domain = _domain(self.key_dir)
        self.keys = _KeyTable(self.key_dir)
        self._contexts: list[int] = []

    def secure(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE server checked by this install's ZAP handler (call before bind)."""
        self._attach(sock.context)
        sock.curve_secretkey = self._secret
        sock.curve_publickey = self.public
        sock.curve_server = True
        sock.zap_domain = self.domain.encode()
        sock.zap_enforce_domain = True  # no ZAP handler answering means no connection, never an open door

    def _attach(self, ctx: zmq.Context) -> None:
        ptr = ctx.underlying
        with _AUTH_LOCK:
            auth = _AUTHENTICATORS.get(ptr)
            if auth is None:
                auth = _role_authenticator(zmq.Context(shadow=ptr))
                auth.start()
                _AUTHENTICATORS[ptr] = auth
            auth.configure_curve_callback(self.domain, self.keys)
            auth.tables[self.domain] = self.keys
            auth.users += 1
            self._contexts.append(ptr)

    def release(self) -> None:
        """Drop this install's sockets from the ZAP handler (stopping it when no server uses it)."""
        with _AUTH_LOCK:
            for ptr in self._contexts:
                auth = _AUTHENTICATORS.get(ptr)
                if auth is None:
                    continue
                auth.users -= 1
                if auth.users <= 0:
                    auth.stop()
                    del _AUTHENTICATORS[ptr]
            self._contexts.clear()

    def role_of(self, user_id: str | None) -> str:
        """The role of a request's ``User-Id``; Unauthenticated if missing or no longer a current key."""
        role, _, key = (user_id or "").partition(":")
        if not role or self.keys.current().get(key.encode()) != role:
            raise Unauthenticated("this client's key is not (or no longer) accepted by the service; "
                                  "see 'mmr keys'")
        return role


def describe_keys(config_dir: Path) -> list[dict[str, Any]]:
    """Every key of the install: name, files, public-key fingerprint and file modes — never secret material."""
    key_dir = keys_dir(config_dir)
    rows = []
    for name in (SERVER, *CLIENT_ROLES):
        row: dict[str, Any] = {"name": name, "role": name if name != SERVER else None}
        for kind, suffix in (("public", ".key"), ("secret", ".key_secret")):
            path = key_dir / f"{name}{suffix}"
            row[f"{kind}_file"] = str(path)
            try:
                row[f"{kind}_mode"] = f"{path.stat().st_mode & 0o777:04o}"
            except OSError:
                row[f"{kind}_mode"] = None
        try:
            public, _ = zmq.auth.load_certificate(key_dir / f"{name}.key")
            row["fingerprint"] = fingerprint(public)
        except (OSError, ValueError):
            row["fingerprint"] = None
        rows.append(row)
    return rows
