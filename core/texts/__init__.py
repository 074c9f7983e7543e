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


def catalog_language(code: str | None) -> str | None:
    """The catalog for a language code ("de-AT" → "de"), or None when there is none."""
    base = (code or "").strip().split("-")[0].split("_")[0].lower()
    return base if base in CATALOGS else None


def best_language(
    *preferred: str | None, accept: str | None = None, default: str = DEFAULT_LANGUAGE
) -> str:
    """The first of `preferred` we have a catalog for, else the best of an HTTP
    Accept-Language header (`de-AT,de;q=0.9,en;q=0.5`), else `default`."""
    for code in preferred:
        if found := catalog_language(code):
            return found
    ranked = []
    for position, item in enumerate((accept or "").split(",")[:20]):
        code, _, weight = item.strip().partition(";q=")
        try:
            quality = float(weight) if weight else 1.0
        except ValueError:
            continue
        ranked.append((-quality, position, code))
    for quality, _, code in sorted(ranked):
        if quality < 0 and (found := catalog_language(code)):
            return found
    return catalog_language(default) or DEFAULT_LANGUAGE
