"""Small wording helpers the flows share (times, windows, an order's status line)."""

from __future__ import annotations

from datetime import datetime

from core.conversations import buttons
from core.conversations.replies import Button, Choices
from core.conversations.turn import Turn
from core.notify.messages import clock, span, tracking_link
from core.people.customers import OrderStatusView, new_slots
from core.texts import t


def when(turn: Turn, moment: datetime | None) -> str:
    return clock(moment, turn.zone)


def window(turn: Turn, start: datetime, end: datetime, lang: str | None = None) -> str:
    return span(start, end, turn.zone, lang)


def status_line(turn: Turn, view: OrderStatusView) -> str:
    lang = turn.lang
    eta_line = t("msg.eta_line", lang, eta=when(turn, view.eta)) if view.eta else ""
    driver_line = t("customer.driver_line", lang, driver=view.driver) if view.driver else ""
    return t(
        "customer.order_line",
        lang,
        ref=view.ref,
        status=t(f"status.{view.status}", lang),
        eta_line=eta_line,
        driver_line=driver_line,
        link=tracking_link(turn.svc.settings, view.tracking_token),
    )


def slot_choices(turn: Turn, order_id: int, by: str, lang: str | None = None) -> Choices:
    """The next delivery slots for an order, to pick one (`by`: c customer, d dispatcher
    rescheduling, w dispatcher changing a window)."""
    rows = tuple(
        Button(window(turn, w.starts_at, w.ends_at, lang), buttons.Slot.of(order_id, w, by).pack())
        for w in new_slots(turn.svc.clock(), turn.zone)
    )
    return Choices(rows)
