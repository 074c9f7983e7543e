"""One Redis client per use, each on a bounded pool of connections.

redis-py's default pool opens a new connection for every command that finds none idle, with no
upper bound: under a burst (a webhook flood on a slow machine) one process can open thousands and
take Redis' `maxclients` from every instance. A bounded, blocking pool makes a burst wait its
turn for a connection instead (seen: about 10,000 connections from one instance under the
several-instances benchmark before this)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

MAX_CONNECTIONS = 32  # per client, per process
WAIT_S = 10.0  # the most a command waits for a free connection before it fails


def client(url: str, name: str, **options: Any) -> Redis:
    """A client for `url` on its own bounded pool; `name` shows in Redis' CLIENT LIST."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=WAIT_S,
        client_name=f"lastmile-{name}",
        **options,
    )
    return Redis(connection_pool=pool, auto_close_connection_pool=True)
