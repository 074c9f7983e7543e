"""The WhatsApp client and renderer against the fake Graph API (tests/fakes/graph_api.py), and the
fake itself against Meta's own examples (tests/fixtures/whatsapp/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.whatsapp import render
from bot.whatsapp.client import GraphClient, GraphError, error_of
from core.config import WhatsAppSettings
from core.conversations.replies import Button, Choices, Link, OutFile, Reply
from core.storage import Files, LocalStorage
from tests.conftest import FIXTURES
from tests.fakes.graph_api import FakeGraph, GraphFault, sign

SEND = FIXTURES / "whatsapp" / "send"
CONSTRUCTED = FIXTURES / "whatsapp" / "constructed"
TO = "16505551234"
ROW = "interactive.action.sections.0.rows.0"
SAME_ID = "<UNIQUE_BUTTON_ID_1>"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def settings_for(fake: FakeGraph, **changes: Any) -> WhatsAppSettings:
    values: dict[str, Any] = {
        "access_token": fake.token,
        "phone_number_id": fake.phone_number_id,
        "app_secret": fake.app_secret,
        "api_url": fake.url,
        "api_version": fake.version,
    }
    return WhatsAppSettings(**(values | changes))


def example(name: str) -> dict[str, Any]:
    folder = CONSTRUCTED if name.startswith("send.") else SEND
    body = json.loads((folder / name).read_text())
    body.pop("messaging_product", None)
    body["to"] = TO
    return body


async def test_a_text_is_sent_with_the_token_and_returns_its_wamid():
    async with FakeGraph() as fake:
        client = GraphClient(settings_for(fake))
        wamid = await client.send(example("send-text-message.json"))
        await client.aclose()
    assert wamid.startswith("wamid.")
    [sent] = fake.sent_to(TO)
    assert sent.wamid == wamid and sent.body["messaging_product"] == "whatsapp"
    assert sent.text == "text-message-content"


@pytest.mark.parametrize(
    ("changes", "code", "status"),
    [
        ({"access_token": "EAAG-wrong"}, 190, 401),
        ({"api_version": "v19.0"}, 2500, 400),
        ({"phone_number_id": "999"}, 100, 400),
    ],
)
async def test_a_wrong_token_version_or_number_is_refused_for_good(changes, code, status):
    async with FakeGraph() as fake:
        client = GraphClient(settings_for(fake, **changes))
        with pytest.raises(GraphError) as caught:
            await client.send(example("send-text-message.json"))
        await client.aclose()
    assert (caught.value.code, caught.value.status, caught.value.outcome) == (
        code,
        status,
        "permanent",
    )
    assert not fake.sent_to(TO)


@pytest.mark.parametrize(
    ("code", "status", "outcome"),
    [
        (130429, None, "retry"),
        (131056, None, "retry"),
        (80007, None, "retry"),
        (4, None, "retry"),
        (131000, 500, "retry"),
        (1, 500, "retry"),
        (131047, None, "template"),
        (131026, None, "permanent"),
        (131030, None, "permanent"),
        (131051, None, "permanent"),
        (100, None, "permanent"),
    ],
)
async def test_graph_error_codes_have_their_outcome(code, status, outcome):
    async with FakeGraph() as fake:
        fake.fail_next(code, status=status, retry_after=2 if code == 130429 else None)
        client = GraphClient(settings_for(fake))
        with pytest.raises(GraphError) as caught:
            await client.send(example("send-text-message.json"))
        wamid = await client.send(example("send-text-message.json"))  # only the next one failed
        await client.aclose()
    assert caught.value.code == code and caught.value.outcome == outcome
    assert caught.value.retry_after == (2.0 if code == 130429 else None)
    assert wamid and len(fake.sent_to(TO)) == 1


async def test_an_unreachable_server_is_a_network_error_to_retry():
    async with FakeGraph() as fake:
        url = fake.url
    client = GraphClient(settings_for(fake, api_url=url))
    with pytest.raises(GraphError) as caught:
        await client.send(example("send-text-message.json"))
    await client.aclose()
    assert caught.value.status == 0 and caught.value.outcome == "retry"


def test_meta_error_envelopes_are_read():
    for name, code, subcode in [
        ("graph-api-error-schema-example.json", 100, 33),
        ("../constructed/graph.error.131030.json", 131030, None),
    ]:
        raw = (SEND / name).read_bytes()
        error = error_of(httpx.Response(400, content=raw))
        assert (error.code, error.subcode, error.outcome) == (code, subcode, "permanent")
    not_json = error_of(httpx.Response(502, content=b"<html>Bad Gateway</html>"))
    assert (not_json.code, not_json.outcome) == (0, "retry")


@pytest.mark.parametrize(
    "name",
    [
        "send-text-message.json",
        "send-reply-button.json",
        "send-list-message.json",
        "send-location-message.json",
        "send-document-message-by-url.json",
        "send.location_request_message.request.json",
    ],
)
async def test_the_fake_accepts_metas_own_examples(name):
    async with FakeGraph() as fake:
        client = GraphClient(settings_for(fake))
        assert await client.send(example(name))
        await client.aclose()


def bad(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is KeyError:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return body


@pytest.mark.parametrize(
    ("name", "path", "value", "code"),
    [
        ("send-text-message.json", "text.body", "x" * 4097, 131009),
        ("send-text-message.json", "text.body", "", 131009),
        ("send-text-message.json", "to", KeyError, 131008),
        ("send-text-message.json", "type", "hologram", 131051),
        ("send-reply-button.json", "interactive.action.buttons.0.reply.title", "x" * 21, 131009),
        ("send-reply-button.json", "interactive.action.buttons.1.reply.id", SAME_ID, 131009),
        ("send-reply-button.json", "interactive.body.text", "x" * 1025, 131009),
        ("send-reply-button.json", "interactive.action.buttons", [], 131009),
        ("send-list-message.json", f"{ROW}.title", "x" * 25, 131009),
        ("send-list-message.json", f"{ROW}.description", "x" * 73, 131009),
        ("send-list-message.json", "interactive.action.button", "x" * 21, 131009),
        ("send-list-message.json", "interactive.action.sections.1.title", KeyError, 131008),
        ("send-list-message.json", "interactive.header.text", "x" * 61, 131009),
        ("send-image-message-by-id.json", "image.id", "no-such-upload", 131053),
        ("send.location_request_message.request.json", "interactive.action.name", "go", 131009),
        ("send-message-template-text.json", "template.name", "unknown_template", 132001),
    ],
)  # fmt: skip
async def test_the_fake_refuses_what_meta_refuses(name, path, value, code):
    async with FakeGraph() as fake:
        client = GraphClient(settings_for(fake))
        with pytest.raises(GraphError) as caught:
            await client.send(bad(example(name), path, value))
        await client.aclose()
    assert caught.value.code == code and caught.value.outcome == "permanent"
    assert not fake.sent_to(TO)


async def test_eleven_list_rows_are_refused():
    body = example("send-list-message.json")
    rows = [{"id": f"r{i}", "title": f"Row {i}"} for i in range(11)]
    body["interactive"]["action"]["sections"] = [{"title": "All", "rows": rows}]
    async with FakeGraph() as fake:
        with pytest.raises(GraphFault):
            fake.check_message(body)


async def test_templates_must_be_approved_with_their_parameters():
    body = example("send-message-template-text.json")
    body["template"] = {
        "name": "lastmile_update",
        "language": {"code": "en"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Hello"}]}],
    }
    async with FakeGraph() as fake:
        client = GraphClient(settings_for(fake))
        fake.approve("lastmile_update", "de", 1)
        with pytest.raises(GraphError) as unknown_language:
            await client.send(body)
        fake.approve("lastmile_update", "en", 2)
        with pytest.raises(GraphError) as wrong_count:
            await client.send(body)
        fake.approve("lastmile_update", "en", 1)
        assert await client.send(body)
        body["template"]["components"][0]["parameters"][0]["text"] = "two\nlines"
        with pytest.raises(GraphError) as new_line:
            await client.send(body)
        await client.aclose()
    assert [e.value.code for e in (unknown_language, wrong_count, new_line)] == [
        132001,
        132000,
        132018,
    ]


async def test_media_upload_then_download_with_the_token():
    async with FakeGraph() as fake:
        client = GraphClient(settings_for(fake))
        media_id = await client.upload(PNG, "image/png", "chart.png")
        assert await client.download(media_id) == (PNG, "image/png")
        inbound = fake.add_media(b"%PDF-1.4 proof", "application/pdf")
        assert await client.download(inbound) == (b"%PDF-1.4 proof", "application/pdf")
        with pytest.raises(GraphError) as unknown:
            await client.download("424242")
        async with httpx.AsyncClient() as anonymous:  # the media URL needs the token
            info = (
                await anonymous.get(f"{fake.url}/{fake.version}/{media_id}", headers=client.headers)
            ).json()
            assert (await anonymous.get(info["url"])).status_code == 401
        await client.aclose()
    assert unknown.value.code == 100 and fake.downloads == [media_id, inbound]


async def test_mark_read():
    async with FakeGraph() as fake:
        client = GraphClient(settings_for(fake))
        await client.mark_read("wamid.in.1")
        await client.aclose()
    assert fake.reads == ["wamid.in.1"]


# -- rendering ---------------------------------------------------------------------------------


async def rendered(reply: Reply, tmp_path: Path) -> tuple[list[dict[str, Any]], FakeGraph]:
    """The reply's messages, each sent to the fake (which checks Meta's rules)."""
    async with FakeGraph() as fake:
        client = GraphClient(settings_for(fake))
        bodies = await render.messages(reply, TO, client, Files(LocalStorage(tmp_path)))
        for body in bodies:
            await client.send(body)
        await client.aclose()
    return bodies, fake


async def test_buttons_with_long_labels_and_a_long_text_stay_valid(tmp_path: Path):
    text = "\n\n".join(f"Paragraph {i}: " + "word " * 60 for i in range(6))  # ~1,900 chars
    labels = ["Reschedule for tomorrow morning", "Reschedule for tomorrow evening", "Return"]
    reply = Reply(text, buttons=tuple(Button(label, f"b:{i}") for i, label in enumerate(labels)))
    bodies, fake = await rendered(reply, tmp_path)
    assert [b["type"] for b in bodies] == ["text", "interactive"]
    titles = [b["reply"]["title"] for b in bodies[-1]["interactive"]["action"]["buttons"]]
    assert all(len(title) <= 20 for title in titles) and len(set(titles)) == 3
    assert titles[2] == "Return"
    shown = " ".join(s.text for s in fake.sent_to(TO))
    assert " ".join(shown.split()) == " ".join(text.split())  # nothing cut away
    assert len(bodies[-1]["interactive"]["body"]["text"]) <= 1024


async def test_a_very_long_text_is_split_at_paragraphs(tmp_path: Path):
    text = "\n\n".join(f"{i}. " + "stop " * 150 for i in range(12))  # ~9,000 chars
    bodies, fake = await rendered(Reply(text), tmp_path)
    assert len(bodies) >= 3 and all(len(b["text"]["body"]) <= 4096 for b in bodies)
    assert all(b["text"]["body"][0].isdigit() for b in bodies)  # each starts a paragraph
    assert "".join(s.text for s in fake.sent_to(TO)).replace(" ", "").replace("\n", "") == (
        text.replace(" ", "").replace("\n", "")
    )


async def test_a_list_with_long_rows_and_a_title(tmp_path: Path):
    rows = tuple(
        Button(f"Tomorrow {h}:00–{h + 2}:00, any driver available", f"s:{h}") for h in range(8, 18)
    )
    reply = Reply("Pick a new slot", choices=Choices(rows, "Pick a time slot please"))
    bodies, _ = await rendered(reply, tmp_path)
    [body] = bodies
    action = body["interactive"]["action"]
    assert len(action["button"]) <= 20 and len(action["sections"][0]["rows"]) == 10
    row = action["sections"][0]["rows"][0]
    assert len(row["title"]) <= 24 and row["description"].startswith("Tomorrow 8:00")


async def test_a_location_request_a_link_and_an_edit(tmp_path: Path):
    reply = Reply("Shift started. Where are you?", ask_location=True, edit=True)
    [ask], _ = await rendered(reply, tmp_path)
    assert ask["interactive"]["type"] == "location_request_message"
    link = Reply("Your order is on its way", link=Link("Track it", "https://lm.example/t/abc"))
    [text], _ = await rendered(link, tmp_path)
    assert text["text"]["body"].endswith("Track it: https://lm.example/t/abc")
    assert text["text"]["preview_url"] is True


async def test_files_are_uploaded_first(tmp_path: Path):
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "day.csv").write_text("order,status\n1,delivered\n")
    document = Reply(
        "Today's report", file=OutFile("document", "day.csv", path=Path("reports/day.csv"))
    )
    [doc], fake = await rendered(document, tmp_path)
    assert doc["type"] == "document" and doc["document"]["filename"] == "day.csv"
    assert doc["document"]["caption"] == "Today's report" and len(fake.uploads) == 1
    photo = Reply(
        "Delivered", buttons=(Button("Rate", "r:1"),), file=OutFile("photo", "p.png", content=PNG)
    )
    bodies, _ = await rendered(photo, tmp_path)
    assert [b["type"] for b in bodies] == ["image", "interactive"]
    assert "caption" not in bodies[0]["image"]
    gone = Reply("Delivered", file=OutFile("photo", "x.jpg", path=Path("proofs/x.jpg")))
    [words], _ = await rendered(gone, tmp_path)  # the photo is gone: the words still go
    assert words["text"]["body"] == "Delivered"
    missing = Reply("Report", file=OutFile("document", "r.csv", path=Path("../etc/passwd")))
    with pytest.raises(render.MissingFile):
        await rendered(missing, tmp_path)


def test_split_and_shorten_edges():
    assert render.split("", 10) == [""]
    assert render.split("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert render.split("aaa bbb ccc", 20, 5) == ["aaa bbb", "ccc"]
    assert render.shorten("Reschedule for tomorrow", 20) == "Reschedule for…"
    assert render.shorten("  spaced\n out  ", 20) == "spaced out"


def test_signature_helper_matches_metas_test_vector():
    vector = json.loads((CONSTRUCTED / "signature.testvector.json").read_text())
    body = (
        FIXTURES / "whatsapp" / "meta-openapi-v23" / "webhooks" / "text-message.json"
    ).read_bytes()
    assert sign(body, vector["app_secret"]) == vector["x_hub_signature_256"]
