"""User-facing wording, one catalog per language. `t("key", lang, **params)` renders a text.

English lives in `en.py` (domain: statuses, errors, routing reasons) and `en_chat.py` (what the
chat says: notifications, prompts, buttons). German (`de.py`) covers what customers see."""

from __future__ import annotations

from core.texts import de, en, en_chat

CATALOGS: dict[str, dict[str, str]] = {
    "en": {**en.TEXTS, **en_chat.TEXTS},
    "de": de.TEXTS,  # what customers see; the rest falls back to English
}
DEFAULT_LANGUAGE = "en"


def t(key: str, lang: str | None = None, /, **params: object) -> str:
    catalog = CATALOGS.get(lang or DEFAULT_LANGUAGE, CATALOGS[DEFAULT_LANGUAGE])
    template = catalog.get(key) or CATALOGS[DEFAULT_LANGUAGE][key]
    return template.format(**params)
