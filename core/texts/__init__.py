"""User-facing wording, one catalog per language. `t("key", lang, **params)` renders a text.

English lives in `en.py` (domain: statuses, errors, routing reasons) and `en_chat.py` (what the
chat says: notifications, prompts, buttons). German (`de.py`) covers what customers see (the keys
starting with one of `CUSTOMER_KEYS`); staff — owners, dispatchers, drivers — read a language
of `STAFF_LANGUAGES` (English) throughout, so nobody gets a mix.

Plural forms: a key may come as `key.one`, `key.other` (and whichever other CLDR forms the
language has: `zero`, `two`, `few`, `many`); `t("key", lang, count=n)` picks the form by the
language's CLDR plural rule (Babel)."""

from __future__ import annotations

import re
from datetime import date
from functools import cache

from babel import Locale
from babel.dates import format_interval, format_skeleton
from babel.plural import PluralRule

from core.texts import de, en, en_chat

CATALOGS: dict[str, dict[str, str]] = {
    "en": {**en.TEXTS, **en_chat.TEXTS},
    "de": de.TEXTS,
}
LOCALES = {"en": en.LOCALE, "de": de.LOCALE}  # the CLDR locale of each catalog
DEFAULT_LANGUAGE = "en"
STAFF_LANGUAGES = frozenset({"en"})  # catalogs that word everything staff see
CUSTOMER_KEYS = (  # what a customer (or a stranger) can see: every catalog words these
    "msg.customer.",
    "msg.eta_line",
    "msg.window_line",
    "msg.someone",
    "time.span",
    "action.customer.",
    "reason.",
    "status.",
    "verb.",
    "error.transition",
    "error.final",
    "error.too_many_attempts",
    "order.attempts.",
    "start.welcome",
    "start.subscribed",
    "start.unknown_link",
    "invite.used",
    "invite.expired",
    "role.plural.",
    "help.stranger",
    "help.customer",
    "denied",
    "customer.",
    "fallback.unknown",
    "fallback.unsupported",
    "here.done",
    "finish_first",
    "conversation.expired",
    "cancelled",
    "error.generic",
    "error.unreadable",
    "command.start",
    "command.help",
    "tracking.",
    "page.",
)


@cache
def _plural_rule(lang: str) -> PluralRule:
    return Locale.parse(LOCALES[lang]).plural_form


def plural_forms(lang: str) -> frozenset[str]:
    """The plural forms a language distinguishes (always including "other")."""
    return frozenset({*_plural_rule(lang).tags, "other"})


def _template(lang: str, key: str, params: dict[str, object]) -> str | None:
    catalog = CATALOGS[lang]
    if key in catalog:
        return catalog[key]
    count = params.get("count")
    if isinstance(count, int | float):
        return catalog.get(f"{key}.{_plural_rule(lang)(abs(count))}") or catalog.get(f"{key}.other")
    return None


def t(key: str, lang: str | None = None, /, **params: object) -> str:
    language = lang if lang in CATALOGS else DEFAULT_LANGUAGE
    template = _template(language, key, params) or _template(DEFAULT_LANGUAGE, key, params)
    if template is None:
        raise KeyError(f"no text {key!r}")
    return template.format(**params)


def staff_language(lang: str | None) -> str:
    """The language staff read: theirs if its catalog words everything staff see, else English."""
    return lang if lang in STAFF_LANGUAGES else DEFAULT_LANGUAGE


def days(first: date, last: date, lang: str | None = None) -> str:
    """A day ("Wed 25 Nov") or a range of days ("Thu 19 Nov – Wed 25 Nov"), both included."""
    locale = LOCALES.get(lang or DEFAULT_LANGUAGE, LOCALES[DEFAULT_LANGUAGE])
    if first == last:
        return format_skeleton("MMMEd", first, locale=locale)
    return format_interval(first, last, "MMMEd", locale=locale)


@cache
def words(key: str) -> re.Pattern[str]:
    """The words of `key` in every catalog ("where* status": `*` ends a word's beginning),
    as one case-insensitive pattern that finds any of them in a text."""
    found = set()
    for catalog in CATALOGS.values():
        for word in catalog.get(key, "").split():
            prefix = word.endswith("*")
            found.add(re.escape(word.rstrip("*").casefold()) + (r"\w*" if prefix else ""))
    return re.compile(rf"\b(?:{'|'.join(sorted(found))})\b", re.IGNORECASE)


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
