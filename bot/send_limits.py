"""A chat platform's send limits — one account's overall rate and each chat's — kept by this
process and, when REDIS_URL is set, by every instance together through Redis.

- In this process: at most `rate` sends a second overall (`Pace`) and `chat_rate` to one chat,
  each with the pacing MARGIN, exactly as one instance has always paced.
- Shared: before each send an atomic Redis script (`TURN`) checks the account's and the chat's
  next free times and a pause, all in Redis' own clock (`TIME`), so the instances' clocks never
  matter; when both are free it books them (now + gap) in the same step, else it answers how
  long to wait. Sends are thus at least `MARGIN / rate` apart across all instances: never more
  than `rate` in any one-second window, and never more than `chat_rate` to one chat.
- `pause` (a 429's retry_after, Graph's throttling) holds every instance back for that time;
  `hold` does so for one chat.
- Redis unreachable: a warning is logged and this instance goes on at its own pace (never faster
  than the per-process limits), trying Redis again every RETRY_S; it says when it is back.

Why a script of our own rather than a limiter library: `limits`' Redis moving window and
pyrate-limiter's Redis bucket both stamp hits with the calling process's clock (skew between
machines shifts the window), neither books two limits (account and chat) in one atomic step,
and neither has a "pause everyone until" for a platform's retry_after.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bot.pacing import MARGIN, Pace, sleep_until
from core.db import REDIS_UNAVAILABLE

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger(__name__)
RETRY_S = 5.0  # after Redis failed, pace alone this long before trying it again
REDIS_TIMEOUT_S = 1.0  # a Redis that does not answer within this is treated as down
KEEP_S = 60.0  # a chat's booking outlives its turn by this much, then Redis forgets it

# KEYS: the account's next free time, the chat's, the account's pause end.
# ARGV: the account's gap and the chat's gap (seconds), how long to keep the bookings (ms).
# Returns {"", "0"} when booked, else {"chat" or "account", seconds to wait} (as text: Lua
# numbers come back from Redis cut to integers).
TURN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local account = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'),
                         tonumber(redis.call('GET', KEYS[3]) or '0'))
local chat = tonumber(redis.call('GET', KEYS[2]) or '0')
if chat > now then return {'chat', string.format('%.6f', chat - now)} end
if account > now then return {'account', string.format('%.6f', account - now)} end
local keep = tonumber(ARGV[3])
redis.call('SET', KEYS[1], string.format('%.6f', now + tonumber(ARGV[1])), 'PX', keep)
redis.call('SET', KEYS[2], string.format('%.6f', now + tonumber(ARGV[2])), 'PX', keep)
return {'', '0'}
"""

# KEYS[1]: a next-free-time key; ARGV: seconds to hold it back, how long to keep it (ms).
HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local known = tonumber(redis.call('GET', KEYS[1]) or '0')
if known < until_ then
  redis.call('SET', KEYS[1], string.format('%.6f', until_), 'PX', tonumber(ARGV[2]))
end
return 1
"""


class SendLimits:
    """One account's limits on one platform (`account`: e.g. `telegram:<bot id>`). `turn(chat)`
    returns when a message may go to `chat` now; without `redis_url`, this process alone."""

    def __init__(
        self, account: str, rate: float, chat_rate: float, redis_url: str | None = None
    ) -> None:
        self.overall = Pace(rate)
        self.chat_gap = MARGIN / chat_rate
        self.chats: dict[str, float] = {}  # chat -> monotonic time it may get its next message
        self.shared = (
            Shared(account, self.overall.gap, self.chat_gap, redis_url) if redis_url else None
        )

    async def turn(
        self,
        chat: str | int,
        held_until: Callable[[], float] = lambda: 0.0,
        ready: Callable[[], Awaitable[bool]] | None = None,
    ) -> bool:
        """Wait until a message may go to `chat` (and past `held_until()`, a monotonic time the
        caller's own holds may move), then count it as sent: True. `ready` is awaited right
        before the turn is counted, one caller of this process at a time (the sender proves
        its lease there, so that nothing but the count stands between it and the send); when it
        answers False nothing is counted and `turn` returns False."""
        chat = str(chat)
        while True:
            await sleep_until(lambda: max(self.chats.get(chat, 0.0), held_until()))
            async with self.overall.lock:
                await sleep_until(lambda: self.overall.next)  # a pause may move it meanwhile
                if ready is not None and not await ready():
                    return False
                blocker, wait = await self.shared.turn(chat) if self.shared else ("", 0.0)
                now = time.monotonic()
                if not blocker:
                    self.overall.next = now + self.overall.gap
                    self.chats[chat] = now + self.chat_gap
                    return True
                if blocker == "account":  # another instance sent, or a pause: everyone waits
                    self.overall.next = max(self.overall.next, now + wait)
                    continue
            # another instance wrote to this chat: others in this process need not wait for it
            self.chats[chat] = max(self.chats.get(chat, 0.0), now + wait)

    async def pause(self, seconds: float) -> None:
        """The platform asked the account to wait: no instance sends for `seconds`."""
        self.overall.pause(seconds)
        if self.shared:
            await self.shared.hold(self.shared.pause_key, seconds)

    async def hold(self, chat: str | int, seconds: float) -> None:
        """The platform asked us to wait before writing to `chat` again: no instance does."""
        chat = str(chat)
        self.chats[chat] = max(self.chats.get(chat, 0.0), time.monotonic() + seconds)
        if self.shared:
            await self.shared.hold(self.shared.chat_key(chat), seconds)

    def forget_idle(self) -> None:
        now = time.monotonic()
        for chat in [c for c, due in self.chats.items() if due < now]:
            del self.chats[chat]

    async def close(self) -> None:
        if self.shared:
            await self.shared.close()


class Shared:
    """The Redis side of `SendLimits`, and what happens when Redis cannot be reached."""

    def __init__(self, account: str, gap: float, chat_gap: float, url: str) -> None:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        from core.redis_pool import client

        self.redis: Redis = client(
            url,
            "limits",
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # a failure is handled here, at once
        )
        self.prefix = f"lastmile:limits:{{{account}}}"  # one hash slot: one script, all keys
        self.account_key, self.pause_key = f"{self.prefix}:next", f"{self.prefix}:pause"
        self.gap, self.chat_gap = gap, chat_gap
        self.keep_ms = int((max(gap, chat_gap) + KEEP_S) * 1000)
        self._turn: AsyncScript = self.redis.register_script(TURN)
        self._hold: AsyncScript = self.redis.register_script(HOLD)
        self.down_until: float | None = None  # monotonic time to try Redis again, while down

    def chat_key(self, chat: str) -> str:
        return f"{self.prefix}:chat:{chat}"

    async def turn(self, chat: str) -> tuple[str, float]:
        """("", 0) when booked (or Redis is down), else what blocks ("chat", "account") and for
        how many seconds."""
        keys = [self.account_key, self.chat_key(chat), self.pause_key]
        answer = await self._call(self._turn, keys, [self.gap, self.chat_gap, self.keep_ms])
        if answer is None:
            return "", 0.0
        blocker, wait = answer
        return (blocker.decode() if isinstance(blocker, bytes) else str(blocker)), float(wait)

    async def hold(self, key: str, seconds: float) -> None:
        keep_ms = int((seconds + KEEP_S) * 1000)
        await self._call(self._hold, [key], [seconds, keep_ms])

    async def _call(self, script: AsyncScript, keys: list[str], args: list[float]) -> list | None:
        if self.down_until is not None and time.monotonic() < self.down_until:
            return None
        try:
            answer = await script(keys=keys, args=args)
        except (*REDIS_UNAVAILABLE, OSError) as exc:
            if self.down_until is None:
                log.warning(
                    "Redis cannot be reached (%s): this instance paces its sends alone, at its "
                    "own limits, until Redis answers again",
                    exc,
                )
            self.down_until = time.monotonic() + RETRY_S
            return None
        if self.down_until is not None:
            log.warning("Redis answers again: send limits are shared with the other instances")
            self.down_until = None
        return answer

    async def close(self) -> None:
        await self.redis.aclose()
