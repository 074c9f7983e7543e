"""What every chat sender of the outbox does the same way: its loop (run until stopped, woken
early when there may be work) and delivering one person's claimed messages in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.send_limits import SendLimits
from core.db import Database
from core.leases import Leases
from core.models import OutboxMessage
from core.notify import outbox


class SenderLoop:
    """`run` delivers batch after batch (`drain_once`) until `stop`; `wake` looks at the outbox
    now instead of after the idle pause."""

    name = "sender"
    idle_s = 0.5

    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        self._stopping.clear()
        await outbox.keep_delivering(
            self.name, self.drain_once, self._stopping, self.idle_s, self._wake
        )

    async def drain_once(self) -> bool:
        """Claim one batch and deliver it; False when nothing was due."""
        raise NotImplementedError


async def in_order(
    db: Database,
    rows: list[OutboxMessage],
    stopping: asyncio.Event,
    deliver: Callable[[OutboxMessage], Awaitable[bool]],
    *,
    no_chat: str | None = None,
) -> None:
    """One person's claimed messages, one after the other: when one must wait (`deliver` says
    False) the later ones are handed back to wait behind it; when stopping, the rest are handed
    back untried. `no_chat`: she has no chat on this channel (each message fails for good)."""
    token = rows[0].lease_token
    for index, row in enumerate(rows):
        assert row.id is not None
        if stopping.is_set():
            await outbox.release(db, [r.id for r in rows[index:] if r.id], token=token)
            return
        if no_chat is not None:
            await outbox.mark_failed(db, row.id, no_chat, permanent=True, token=token)
            continue
        if not await deliver(row):
            await outbox.release(db, [r.id for r in rows[index + 1 :] if r.id], token=token)
            return


async def fenced_turn(
    leases: Leases,
    row_id: int,
    token: str,
    limits: SendLimits,
    chat: str | int,
    held_until: Callable[[], float] = lambda: 0.0,
) -> float | None:
    """Wait for the send limits' turn for `chat`, proving the row's lease is still ours
    (`Leases.hold`) right before the turn is counted, so that the message goes out right after
    (limits counted in Redis hold for when messages arrive only if little happens in between).
    A lease proven more than an eighth of its length ago (a long wait at the head of the line)
    is proven again. Returns the event-loop time by which the send must be over, or None when
    another sender has taken the row over (then nothing is sent)."""
    loop = asyncio.get_running_loop()
    fresh_s = leases.length.total_seconds() / 8
    proven_at, deadline = 0.0, None

    async def ready() -> bool:
        nonlocal proven_at, deadline
        if deadline is None or loop.time() - proven_at > fresh_s:
            proven_at = loop.time()
            deadline = await leases.hold(row_id, token)
        return deadline is not None

    if not await limits.turn(chat, held_until, ready):
        return None
    return deadline
