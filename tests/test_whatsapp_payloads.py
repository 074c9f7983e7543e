"""bot.whatsapp.payloads: every webhook body under tests/fixtures/whatsapp/ (Meta's examples,
pywa's fixtures, our constructed ones) parses as expected; bad bytes and odd shapes never raise."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.whatsapp.payloads import Batch, Message, parse

FIXTURES = Path(__file__).parent / "fixtures" / "whatsapp"


def bodies() -> list[tuple[str, Any]]:
    """Every webhook body of the fixtures, named `file[:name]`."""
    found: list[tuple[str, Any]] = []
    for path in sorted((FIXTURES / "meta-openapi-v23" / "webhooks").glob("*.json")):
        found.append((path.name, json.loads(path.read_bytes())))
    for path in sorted((FIXTURES / "pywa-fixtures").glob("*.json")):
        for name, body in json.loads(path.read_bytes()).items():
            found.append((f"{path.name}:{name}", body))
    for path in sorted((FIXTURES / "constructed").glob("webhook.*.json")):
        found.append((path.name, json.loads(path.read_bytes())))
    return found


def raw_counts(body: dict[str, Any]) -> tuple[int, int]:
    """How many messages and statuses a body holds in its `messages` changes."""
    messages = statuses = 0
    for entry in body["entry"]:
        for change in entry["changes"]:
            if change.get("field") == "messages":
                messages += len(change["value"].get("messages", []))
                statuses += len(change["value"].get("statuses", []))
    return messages, statuses


def test_there_are_many_fixtures() -> None:
    assert len(bodies()) >= 80


@pytest.mark.parametrize(("name", "body"), bodies(), ids=[n for n, _ in bodies()])
def test_every_fixture_parses_with_nothing_dropped(name: str, body: Any) -> None:
    batch = parse(json.dumps(body).encode())
    messages, statuses = raw_counts(body)
    assert batch.readable
    assert len(batch.messages) + len(batch.statuses) == messages + statuses, name
    for message in batch.messages:
        assert message.id and message.sender
        assert message.kind != "unknown" or message.type not in ("text", "image", "location")
    for status in batch.statuses:
        assert status.id and status.status


def one(file: str, name: str | None = None) -> Message:
    if name is None:
        body = json.loads((FIXTURES / "meta-openapi-v23" / "webhooks" / file).read_bytes())
    else:
        body = json.loads((FIXTURES / "pywa-fixtures" / file).read_bytes())[name]
    batch = parse(json.dumps(body))
    assert len(batch.messages) == 1
    return batch.messages[0]


def test_text_with_wa_id_user_id_and_name() -> None:
    message = one("message.json", "text")
    assert (message.kind, message.text, message.id) == ("text", "Body Text", "wamid.xyzxyz")
    assert (message.wa_id, message.user_id) == ("972987654321", "US.13491208655302741918")
    assert message.name == "Test Name"
    assert message.at == datetime.fromtimestamp(1697043223, UTC)
    assert message.phone_number_id == "1122334455667"


def test_meta_text_example() -> None:
    message = one("text-message.json")
    assert message.kind == "text" and message.text and message.wa_id
    assert message.user_id is None  # Meta's examples predate BSUIDs


@pytest.mark.parametrize(
    ("file", "name", "kind", "expected"),
    [
        ("callback_button.json", "button", "press", {"data": "callback_data", "text": "title"}),
        ("callback_button.json", "quick_reply", "press", {"data": "callback_data"}),
        ("callback_selection.json", "callback", "press", {"data": "callback_data"}),
        ("callback_selection.json", "description", "press", {"data": "callback_data"}),
        ("message.json", "current_location", "location", {"lat": 12.25089, "lon": 43.90539}),
        ("message.json", "image", "image", {"media_id": "65463453", "mime_type": "image/jpeg"}),
        ("message.json", "document", "document", {}),
        ("message.json", "audio", "audio", {}),
        ("message.json", "voice", "audio", {}),
        ("message.json", "video", "video", {}),
        ("message.json", "static_sticker", "sticker", {}),
        ("message.json", "reaction", "reaction", {"text": "😮"}),
        ("message.json", "order", "order", {}),
        ("message.json", "unsupported", "unknown", {"error_code": 131051}),
        ("message.json", "unsupported_with_type", "unknown", {}),
        ("message.json", "interactive_message_with_err", "unknown", {}),
        ("flow_completion.json", "completion", "unknown", {}),
        (
            "system.json",
            "phone_number_change",
            "system",
            {"wa_id": "972987654321", "data": "user_changed_number", "new_wa_id": "972912345678"},
        ),
        ("edited_message.json", "image", "edit", {}),
        ("deleted_message.json", "revoke", "revoke", {}),
    ],
)
def test_pywa_kinds(file: str, name: str, kind: str, expected: dict[str, Any]) -> None:
    message = one(file, name)
    assert message.kind == kind
    for key, value in expected.items():
        assert getattr(message, key) == value, key


def test_quick_reply_without_contacts_keeps_the_bsuid() -> None:
    message = one("callback_button.json", "quick_reply_without_context")
    assert message.user_id == "US.13491208655302741918" and message.kind == "press"


def test_contacts_message_keeps_every_phone() -> None:
    message = one("message.json", "contacts")
    assert message.phones == ("+1 555-555-5555", "+1 666-666-6666", "+1 777-777-7777")


def test_meta_examples_kinds() -> None:
    assert one("interactive-button-reply-message.json").kind == "press"
    assert one("interactive-list-reply-message.json").kind == "press"
    assert one("location-message.json").kind == "location"
    assert one("image-message.json").kind == "image"
    assert one("contact-sharing-message.json").kind == "contacts"
    assert one("button-message.json").kind == "press"
    assert one("unsupported-message.json").kind == "unknown"


def test_statuses_constructed_and_pywa() -> None:
    failed = parse((FIXTURES / "constructed" / "webhook.status.failed.131047.json").read_bytes())
    (status,) = failed.statuses
    assert (status.status, status.error_code, status.error_title) == (
        "failed",
        131047,
        "Re-engagement message",
    )
    assert status.recipient == "16505551234" and status.user_id is None  # no contacts
    assert status.at == datetime.fromtimestamp(1767225701, UTC)
    sent = json.loads((FIXTURES / "pywa-fixtures" / "message_status.json").read_bytes())
    for name in ("sent", "delivered", "read", "played", "failed"):
        (status,) = parse(sent[name]).statuses
        assert status.status == name


def test_a_batch_of_entries_and_changes_keeps_everything() -> None:
    text = json.loads((FIXTURES / "pywa-fixtures" / "message.json").read_bytes())["text"]
    read = json.loads((FIXTURES / "constructed" / "webhook.status.read.json").read_bytes())
    change = text["entry"][0]["changes"][0]
    second = json.loads(json.dumps(change))
    second["value"]["messages"][0]["id"] = "wamid.second"
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1", "changes": [change, second, {"field": "account_update", "value": {}}]},
            read["entry"][0],
            "not an entry",
        ],
    }
    batch = parse(json.dumps(body).encode())
    assert [m.id for m in batch.messages] == ["wamid.xyzxyz", "wamid.second"]
    assert [s.status for s in batch.statuses] == ["read"]
    assert batch.skipped == 2


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe\x00garbage",
        b"null",
        b"[]",
        b'"text"',
        b"{",
        b"[" * 100_000,
        b'{"entry": 5}',
        b'{"entry": [{"changes": {"value": 1}}]}',
        b'{"entry": [{"changes": [{"value": {"messages": [1, null, {}]}}]}]}',
        b'{"entry": [{"changes": [{"value": {"messages": [{"id": "x", "from": "1",'
        b' "timestamp": "99999999999999999999999999", "type": "location",'
        b' "location": {"latitude": "NaN", "longitude": 1e999}}]}}]}]}',
        b'{"entry": [{"changes": [{"value": {"contacts": "x", "messages": [{"id": "x",'
        b' "from": 5, "type": {"a": 1}, "text": []}],'
        b' "statuses": [{"id": 1, "status": true}]}}]}]}',
        b'{"entry": [{"changes": [{"value": {"messages": [{"id": "x", "from": "1",'
        b' "type": "text", "text": {"body": "\\u0000 nul"}, "errors": [{"code": true}]}]}}]}]}',
    ],
)
def test_bad_bytes_and_odd_shapes_never_raise(body: bytes) -> None:
    batch = parse(body)
    assert isinstance(batch, Batch)
    for message in batch.messages:
        assert message.id and message.sender


def test_a_message_of_an_unknown_type_is_kept() -> None:
    body = {
        "entry": [
            {
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messages": [
                                {"id": "wamid.n", "from": "491", "type": "hologram", "hologram": 1}
                            ]
                        },
                    }
                ]
            }
        ]
    }
    (message,) = parse(body).messages
    assert (message.kind, message.type, message.sender) == ("unknown", "hologram", "491")


def test_a_message_with_nobody_to_answer_is_skipped_and_counted() -> None:
    body = {"entry": [{"changes": [{"value": {"messages": [{"id": "m", "type": "text"}]}}]}]}
    batch = parse(body)
    assert batch.messages == () and batch.skipped == 1
