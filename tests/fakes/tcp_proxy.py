"""A TCP proxy on 127.0.0.1 that a test puts between the app and a server (PostgreSQL, Redis)
to make the server unreachable for a while, without touching the shared server itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url


class Proxy:
    """Forwards connections to `host:port` while open. `cut()` aborts every open connection and
    resets new ones at once (the server is unreachable); `restore()` forwards again."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.open = True
        self.listen_port = 0
        self.refused = 0  # connections reset while cut
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.listen_port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        self.open = False
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    def restore(self) -> None:
        self.open = True

    def url(self, url: str) -> str:
        """`url` (a database or Redis URL of the proxied server) pointed at the proxy."""
        return str(
            make_url(url)
            .set(host="127.0.0.1", port=self.listen_port)
            .render_as_string(hide_password=False)
        )

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))
        for source, target in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, target))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                target.write(data)
                await target.drain()
        target.transport.abort()  # one side gone: drop the other too
        self._links.discard(target)


@asynccontextmanager
async def proxy_for(url: str) -> AsyncIterator[Proxy]:
    """A running proxy in front of the server of `url` (a PostgreSQL or Redis URL)."""
    parsed = make_url(url)
    proxy = Proxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
