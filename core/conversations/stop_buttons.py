"""A driver's stop buttons: Arrived, Picked up, Delivered (with the proof the order needs),
Failed (with a reason, or her own words), and Undo."""

from __future__ import annotations

import logging

from core.conversations import buttons
from core.conversations.events import Upload
from core.conversations.replies import Button, Choices, Link
from core.conversations.turn import Turn
from core.drivers import proofs, stops
from core.drivers.stops import FAIL_REASONS
from core.errors import DomainError
from core.models import ProofKind
from core.texts import t
from core.webviews import pad

log = logging.getLogger(__name__)
PROOF_STEPS = {
    ProofKind.PHOTO: ("proof.photo", "driver.send_photo"),
    ProofKind.SIGNATURE: ("proof.name", "driver.send_name"),
    ProofKind.PIN: ("proof.pin", "driver.send_pin"),
    ProofKind.PHOTO_SIGNATURE: ("proof.photo", "driver.send_photo"),  # then the pad
}
PAD = "proof.pad"
FAIL_OTHER = "fail.other"


def undo(turn: Turn, order_id: int) -> tuple[Button, ...]:
    return (Button(t("button.undo", turn.lang), buttons.StopOp("undo", order_id).pack()),)


async def stop_op(turn: Turn, op: str, order_id: int) -> bool:
    svc, lang, me = turn.svc, turn.lang, turn.driver_id
    if op == "arrive":
        await svc.stops.arrive(me, order_id, turn.actor)
        ref = await _ref(turn, order_id)
        turn.say(t("driver.arrived", lang, ref=ref), buttons=undo(turn, order_id))
    elif op == "pickup":
        await svc.stops.picked_up(me, order_id, turn.actor)
        ref = await _ref(turn, order_id)
        turn.say(t("driver.picked_up", lang, ref=ref), buttons=undo(turn, order_id))
    elif op == "deliver":
        needs = await svc.stops.needs(me, order_id)
        if needs is ProofKind.NONE:
            await _delivered(turn, order_id)
            return True
        step, prompt = PROOF_STEPS[needs]
        await turn.goto(step, order=order_id)
        if needs is ProofKind.SIGNATURE:  # the pad, or her typing the name as before
            await _offer_pad(turn, order_id, "driver.sign")
        else:
            turn.say(t(prompt, lang, ref=await _ref(turn, order_id)))
    elif op == "fail":
        await svc.stops.needs(me, order_id)  # refuses someone else's stop
        reasons = tuple(
            Button(t(f"reason.{r}", lang), buttons.Fail(order_id, r).pack()) for r in FAIL_REASONS
        )
        text = t("driver.fail_reason", lang, ref=await _ref(turn, order_id))
        turn.say(text, choices=Choices(reasons))
    elif op == "undo":
        status = await svc.stops.undo(me, order_id, turn.actor, within=svc.undo_window)
        ref = await _ref(turn, order_id)
        turn.say(t("driver.undone", lang, ref=ref, status=t(f"status.{status}", lang)))
    else:
        return False
    return True


async def _ref(turn: Turn, order_id: int) -> str:
    return await stops.own_ref(turn.svc.db, turn.driver_id, order_id)


async def _next_text(turn: Turn) -> str:
    route = await stops.route_of(turn.svc.db, turn.driver_id)
    if not route:
        return ""
    return t("driver.next_stop", turn.lang, ref=route[0].ref, address=route[0].address)


async def _delivered(turn: Turn, order_id: int) -> None:
    ref = await _ref(turn, order_id)
    await turn.svc.stops.deliver(turn.driver_id, order_id, turn.actor)
    nxt = await _next_text(turn)
    turn.say(t("driver.delivered", turn.lang, ref=ref, next=nxt), buttons=undo(turn, order_id))


# --- proofs, and reasons in her own words ---


async def photo(turn: Turn, upload: Upload) -> None:
    """The proof photo (a photo, or an image sent as a file)."""
    order_id = turn.data["order"]
    if upload.kind == "document" and not (upload.mime_type or "").startswith("image/"):
        raise DomainError("proof.not_image")
    svc = turn.svc
    limit = int(svc.settings.telegram.max_photo_mb * 1_000_000)
    if upload.size is not None and upload.size > limit:
        raise DomainError("proof.too_large", mb=round(limit / 1_000_000))
    try:
        content = await upload.fetch()
    except Exception:
        log.warning("could not fetch proof photo %s", upload.file_ref, exc_info=True)
        raise DomainError("proof.download_failed") from None
    proof = await proofs.save_photo(
        svc.db,
        svc.files,
        order_id,
        turn.driver_id,
        content,
        max_bytes=limit,
        channel_file_id=upload.file_ref,
    )
    if await proofs.waiting(svc.files, proof):  # told once; the spool worker retries quietly
        turn.say(t("driver.proof_spooled", turn.lang, ref=await _ref(turn, order_id)))
    if await turn.svc.stops.needs(turn.driver_id, order_id) is ProofKind.PHOTO_SIGNATURE:
        await turn.goto(PAD, order=order_id)
        await _offer_pad(turn, order_id, "driver.sign_after_photo")
        return
    await turn.finish()
    await _delivered(turn, order_id)


async def _offer_pad(turn: Turn, order_id: int, prompt: str) -> None:
    """The prompt with a button opening the signature pad (a Mini App where the chat has them)."""
    telegram_user = turn.mini_app_user()
    url = await pad.link(turn.svc, turn.member_id, order_id, telegram_user)
    button = Link(t("button.sign", turn.lang), url, web_app=telegram_user is not None)
    turn.say(t(prompt, turn.lang, ref=await _ref(turn, order_id)), link=button)


async def text(turn: Turn, text: str) -> bool:
    if turn.at("proof.photo"):
        ref = await _ref(turn, turn.data["order"])
        turn.say(t("driver.photo_expected", turn.lang, ref=ref))
    elif turn.at(PAD):
        if await proofs.latest_signature(turn.svc.db, turn.data["order"]) is not None:
            await turn.finish()  # signed on the pad meanwhile: this text is something new
            return False
        await _offer_pad(turn, turn.data["order"], "driver.sign_expected")
    elif turn.at("proof.name"):
        order_id = turn.data["order"]
        await proofs.save_recipient(turn.svc.db, order_id, turn.driver_id, text)
        await turn.finish()
        await _delivered(turn, order_id)
    elif turn.at("proof.pin"):
        order_id = turn.data["order"]
        await proofs.check_pin(turn.svc.db, order_id, turn.driver_id, text)
        await turn.finish()
        await _delivered(turn, order_id)
    elif turn.at(FAIL_OTHER):
        order_id = turn.data["order"]
        words = " ".join(text.split())
        if not 2 <= len(words) <= 300:
            turn.say(t("driver.fail_other", turn.lang, ref=await _ref(turn, order_id)))
            return True
        await turn.finish()
        await _failed(turn, order_id, words)
    else:
        return False
    return True


async def fail_reason(turn: Turn, order_id: int, reason: str) -> None:
    ref = await _ref(turn, order_id)
    if reason == "other":
        await turn.goto(FAIL_OTHER, order=order_id)
        turn.say(t("driver.fail_other", turn.lang, ref=ref))
        return
    if reason not in FAIL_REASONS:
        raise DomainError("denied.button")
    await _failed(turn, order_id, reason)


async def _failed(turn: Turn, order_id: int, reason: str) -> None:
    lang = turn.lang
    ref = await _ref(turn, order_id)
    await turn.svc.stops.fail(turn.driver_id, order_id, reason, turn.actor)
    nxt = await _next_text(turn)
    if reason in FAIL_REASONS[:-1]:
        text = t("driver.failed", lang, ref=ref, reason=t(f"reason.{reason}", lang), next=nxt)
    else:  # her own words: she is told who reads them
        text = t("driver.failed_note", lang, ref=ref, next=nxt)
    turn.say(text, buttons=undo(turn, order_id))
