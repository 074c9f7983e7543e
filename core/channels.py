"""Which chat channels this service runs, and how to enable the others (the log at start-up and
the root page say the same)."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Settings


@dataclass(frozen=True)
class ChannelState:
    name: str
    running: bool
    detail: str  # how it runs, or how to enable it

    def line(self) -> str:
        return f"{self.name}: {self.detail}"


def channel_states(settings: Settings) -> list[ChannelState]:
    telegram = settings.telegram
    if telegram.enabled:
        how = "" if telegram.mode == "polling" else "; Telegram posts updates to /webhooks/telegram"
        bot = f"; the bot is @{telegram.bot_username}" if telegram.bot_username else ""
        states = [ChannelState("Telegram", True, f"on ({telegram.mode}){how}{bot}")]
    else:
        states = [
            ChannelState(
                "Telegram",
                False,
                "not configured; set TELEGRAM_BOT_TOKEN to enable it (and TELEGRAM_BOT_USERNAME;"
                " both from @BotFather), then restart. Long polling needs no public URL; for a"
                " webhook set TELEGRAM_MODE=webhook, TELEGRAM_WEBHOOK_SECRET and APP_BASE_URL",
            )
        ]
    if settings.whatsapp.enabled:
        whatsapp = settings.whatsapp
        links = (
            f"; invite and subscribe links open wa.me/{whatsapp.phone_number}"
            if whatsapp.phone_number
            else "; set WHATSAPP_PHONE_NUMBER for wa.me invite and subscribe links"
        )
        detail = f"on; Meta posts updates to /webhooks/whatsapp{links}"
        states.append(ChannelState("WhatsApp", True, detail))
    else:
        states.append(
            ChannelState(
                "WhatsApp",
                False,
                "not configured; set WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID "
                "and WHATSAPP_APP_SECRET to enable it",
            )
        )
    if settings.sandbox:
        states.append(ChannelState("Sandbox", True, "on, at /sandbox (loopback only unless "
                                   "SANDBOX_TOKEN is set and given)"))  # fmt: skip
    else:
        states.append(
            ChannelState(
                "Sandbox", False, "off; set SANDBOX=true to play chats at /sandbox, or make demo"
            )
        )
    return states
