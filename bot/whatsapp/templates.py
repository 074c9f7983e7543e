"""A notice as an approved WhatsApp template, for people whose 24-hour window is closed.

Which template a notice uses, in which languages it is approved and which values fill its body
parameters, in order, is in WHATSAPP_TEMPLATES (core.config.default_templates is the default
set; "*" is the template of every notice without its own). A parameter is `text` (the message
as it would have been written, on one line), `tracking_link`, `order_ref`, or a value of the
notice (`order_id`, `reason`, …); a value that is missing is "-". Meta refuses parameters with
new lines, tabs or four spaces in a row, and empty ones: none are made."""

from __future__ import annotations

from typing import Any

from core.config import DEFAULT_TEMPLATE, Settings
from core.models import OutboxMessage, order_ref
from core.notify.messages import Rendered, tracking_link

PARAM_MAX = 1000  # a template's body is at most 1,024 characters
MISSING = "-"


def one_line(text: str, limit: int = PARAM_MAX) -> str:
    lines = (" ".join(line.split()) for line in text.splitlines())
    flat = " · ".join(line for line in lines if line)
    return (flat[: limit - 1] + "…" if len(flat) > limit else flat) or MISSING


def value(name: str, rendered: Rendered, row: OutboxMessage, settings: Settings) -> str:
    params = row.params or {}
    if name == "text":
        return one_line(rendered.text)
    if name == "tracking_link":
        token = params.get("tracking_token")
        return tracking_link(settings, str(token)) if token else MISSING
    if name == "order_ref":
        return order_ref(params.get("external_ref"), params.get("order_id") or row.order_id)
    found = params.get(name)
    return one_line(str(found), 200) if found not in (None, "") else MISSING


def template_message(
    rendered: Rendered, row: OutboxMessage, to: str, settings: Settings
) -> dict[str, Any]:
    templates = settings.whatsapp.templates
    spec = templates.get(row.template) or templates[DEFAULT_TEMPLATE]
    language = rendered.language if rendered.language in spec.languages else spec.languages[0]
    template: dict[str, Any] = {"name": spec.name, "language": {"code": language}}
    if spec.params:
        parameters = [
            {"type": "text", "text": value(name, rendered, row, settings)} for name in spec.params
        ]
        template["components"] = [{"type": "body", "parameters": parameters}]
    return {"to": to, "recipient_type": "individual", "type": "template", "template": template}
