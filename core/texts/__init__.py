"""User-facing wording, one module per language. `t("key", lang, **params)` renders a text."""

from __future__ import annotations

from core.texts import en

CATALOGS: dict[str, dict[str, str]] = {"en": en.TEXTS}
DEFAULT_LANGUAGE = "en"


def t(key: str, lang: str | None = None, /, **params: object) -> str:
    catalog = CATALOGS.get(lang or DEFAULT_LANGUAGE, CATALOGS[DEFAULT_LANGUAGE])
    template = catalog.get(key) or CATALOGS[DEFAULT_LANGUAGE][key]
    return template.format(**params)
