"""Delivers merchant webhooks: claims due deliveries, POSTs each signed body, logs the attempt.

Several senders (one per instance) may run: claims are leases taken with SKIP LOCKED
(`core.leases`), so a delivery goes to one sender at a time; each POST starts only once the
sender has proved it still holds the delivery and is cut off at half the lease, and one whose
sender died is taken again after the lease.
Unless `WEBHOOKS_ALLOW_PRIVATE`, a URL whose host resolves to a loopback, private or link-local
address is refused when sent (a merchant's URL must not reach into our own network).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from datetime import timedelta

import httpx

from core.clock import Clock
from core.config import WebhooksSettings
from core.db import Database
from core.leases import LEASE, Leases
from core.merchants import deliveries, queue
from core.models import WebhookDelivery

log = logging.getLogger(__name__)
IDLE_S = 1.0
EXCERPT = 500
USER_AGENT = "Lastmile-Webhooks/1"


class PublicOnly(httpx.AsyncBaseTransport):
    """Connects only to hosts whose every address is public. (httpx resolves the name again
    when it connects; a DNS answer that changes in between is not caught.)"""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise httpx.ConnectError(f"cannot resolve {host}: {exc}", request=request) from None
        for *_, address in found:
            ip = ipaddress.ip_address(str(address[0]).split("%")[0])
            if not ip.is_global:
                message = f"{host} is {ip}, not a public address (WEBHOOKS_ALLOW_PRIVATE)"
                raise httpx.ConnectError(message, request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class WebhookSender:
    def __init__(
        self,
        db: Database,
        settings: WebhooksSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        idle_s: float = IDLE_S,
        lease: timedelta = LEASE,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock: Clock = clock or db.now
        self.leases = Leases(db, WebhookDelivery, lease, clock)
        self.idle_s = idle_s
        if transport is None and not settings.allow_private:
            transport = PublicOnly()
        self.client = httpx.AsyncClient(
            timeout=settings.timeout_s,
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name="webhook-sender")

    async def stop(self) -> None:
        """Finish the requests in flight, hand back what was claimed and not tried."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        await self.client.aclose()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = await self.drain_once()
            except Exception:
                log.exception("webhooks: could not read the deliveries")
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.idle_s)

    async def drain_once(self) -> bool:
        """Claim one batch and try each delivery once; False when nothing was due."""
        batch = await queue.claim(
            self.db, limit=self.settings.concurrency, now=self.clock(), lease=self.leases.length
        )
        if not batch:
            return False
        async with self.leases.kept(batch[0].token):
            await asyncio.gather(*(self.deliver(item) for item in batch))
        return True

    async def deliver(self, item: queue.Claimed) -> queue.Outcome:
        if self._stopping.is_set():
            await queue.release(self.db, [item.id], token=item.token, now=self.clock())
            return queue.Outcome(item.url, error="not tried: the sender stopped")
        deadline = await self.leases.hold(item.id, item.token)
        if deadline is None:
            log.warning("webhook %s was taken over by another sender: not sending it", item.id)
            return queue.Outcome(item.url, error="not tried: another sender has it")
        body = item.body.encode()
        headers = {
            "Content-Type": "application/json",
            deliveries.SIGNATURE_HEADER: deliveries.sign(item.secret, body),
            deliveries.EVENT_HEADER: item.event_type,
            deliveries.DELIVERY_HEADER: str(item.id),
        }
        started = time.perf_counter()
        try:
            async with (
                asyncio.timeout_at(deadline),  # the whole request, however slowly it trickles
                self.client.stream("POST", item.url, content=body, headers=headers) as reply,
            ):
                excerpt = b""
                async for chunk in reply.aiter_bytes():  # the start of the answer is enough
                    excerpt += chunk
                    if len(excerpt) >= EXCERPT:
                        break
            outcome = queue.Outcome(
                item.url,
                status_code=reply.status_code,
                error=None if reply.is_success else f"HTTP {reply.status_code}",
                response_excerpt=excerpt[:EXCERPT].decode(errors="replace") or None,
                duration_ms=_ms_since(started),
            )
        except TimeoutError:
            half = self.leases.length.total_seconds() / 2
            error = f"TimeoutError: the request took longer than {half:g} s (OUTBOX_LEASE_S / 2)"
            outcome = queue.Outcome(item.url, error=error, duration_ms=_ms_since(started))
        except Exception as exc:  # whatever went wrong is a failed attempt, logged and retried
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            outcome = queue.Outcome(item.url, error=error, duration_ms=_ms_since(started))
        status = await queue.record(self.db, item.id, outcome, token=item.token, now=self.clock())
        if not outcome.ok:
            log.info("webhook %s to %s: %s, now %s", item.id, item.url, outcome.error, status)
        return outcome


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
