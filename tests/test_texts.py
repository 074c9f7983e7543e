"""The wording catalogs: every key a catalog has exists in English with the same placeholders,
every plural has the forms its language needs, customers never meet a missing German text,
every key the code asks for exists, and every text renders."""

from __future__ import annotations

import ast
import re
import string
from datetime import UTC, date, datetime

import pytest

from core.conversations.commands import COMMANDS
from core.drivers.stops import FAIL_REASONS
from core.merchants.deliveries import EVENT_TYPES
from core.models import OrderStatus, ProofKind, Role
from core.people.customers import asks_where
from core.texts import (
    CATALOGS,
    CUSTOMER_KEYS,
    DEFAULT_LANGUAGE,
    STAFF_LANGUAGES,
    days,
    plural_forms,
    staff_language,
    t,
)
from core.tracking import public
from core.webviews import board, driver, pad
from tests.conftest import ROOT

ENGLISH = CATALOGS[DEFAULT_LANGUAGE]
SOURCES = [
    path
    for folder in ("core", "bot", "web", "lastmile")
    for path in sorted((ROOT / folder).rglob("*.py"))
    if "texts" not in path.parts
]
KEY_CALLS = {"t", "DomainError", "NotFound", "ProblemError", "TransitionRefused"}
PLURAL = re.compile(r"^(?P<base>.+)\.(?P<form>zero|one|two|few|many|other)$")
# keys built at run time from a prefix and one of a known set of names
FAMILIES: dict[str, list[str]] = {
    "status.": [s.value for s in OrderStatus],
    "verb.": [s.value for s in OrderStatus],
    "proof.": [p.value for p in ProofKind if p is not ProofKind.NONE],
    "role.": [r.value for r in Role],
    "role.a.": [r.value for r in Role],
    "role.plural.": [r.value for r in Role],
    "reason.": list(FAIL_REASONS),
    "pad.": list(pad.PAGE_WORDS),
    "board.": list(board.PAGE_WORDS),
    "driverpage.": list(driver.PAGE_WORDS),
    "command.": sorted({name for names in COMMANDS.values() for name in names}),
    "page.step.": list(public.STEPS),
    "msg.": [],  # outbox templates and
    "action.": [],  # notification actions: found as literals below
}
# a literal naming a notification template or action ("customer.order_failed", "order.open")
NAMED = re.compile(r"^(customer|driver|dispatcher|order)\.[a-z_]+$")


def base(key: str) -> str:
    match = PLURAL.match(key)
    return match["base"] if match else key


def has(catalog: dict[str, str], key: str) -> bool:
    """The key itself, or a plural family of that name."""
    return key in catalog or f"{key}.other" in catalog


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def first_args(tree: ast.AST) -> list[ast.expr]:
    """The first argument of every call of t() or a refusal."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in KEY_CALLS:
                found.append(node.args[0])
    return found


def literal_keys(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return literal_keys(node.body) + literal_keys(node.orelse)
    return []


def test_every_catalog_is_a_subset_of_english_with_the_same_placeholders():
    for lang, catalog in CATALOGS.items():
        for key, template in catalog.items():
            assert has(ENGLISH, base(key)), f"{lang}: {key} is not in the English catalog"
            english = ENGLISH.get(key) or ENGLISH[f"{base(key)}.other"]
            ours, theirs = fields(template) - {"count"}, fields(english) - {"count"}
            assert ours == theirs, f"{lang}: {key} has {ours}, English has {theirs}"


def test_plurals_have_every_form_their_language_needs():
    families = {base(k) for k in ENGLISH if k.endswith(".one")}  # English plurals have "one"
    assert {"route.header", "orders.header", "import.errors"} <= families
    for lang, catalog in CATALOGS.items():
        for family in families & {base(k) for k in catalog}:
            forms = {PLURAL.match(k)["form"] for k in catalog if base(k) == family and k != family}
            assert forms == plural_forms(lang), f"{lang}: {family} has forms {forms}"
            other = catalog[f"{family}.other"]
            assert "count" in fields(other), f"{lang}: {family}.other does not say {{count}}"


def test_customers_never_meet_a_missing_text():
    wanted = {base(k) for k in ENGLISH if k.startswith(CUSTOMER_KEYS)}
    assert len(wanted) > 100
    for lang, catalog in CATALOGS.items():
        missing = sorted(k for k in wanted if not has(catalog, k))
        assert missing == [], f"{lang} lacks texts customers see: {missing}"
    for lang in STAFF_LANGUAGES:  # and staff never meet a missing one in theirs
        assert {base(k) for k in ENGLISH} <= {base(k) for k in CATALOGS[lang]}


def test_every_key_the_code_asks_for_exists():
    asked: set[str] = set()
    prefixes: set[str] = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for node in first_args(tree):
            asked.update(literal_keys(node))
            if isinstance(node, ast.JoinedStr) and isinstance(node.values[0], ast.Constant):
                prefixes.add(str(node.values[0].value))
        for node in ast.walk(tree):  # templates, actions and keys kept in variables and tables
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and (NAMED.match(text) or text in ENGLISH):
                asked.add(text)
    for page in (ROOT / "web" / "templates").glob("*.html"):
        for key in re.findall(r"""\bt\(["']([a-z_.]+)["']""", page.read_text()):
            (prefixes if key.endswith(".") else asked).add(key)
    asked -= set(EVENT_TYPES.values())  # merchant webhook events, not wording
    assert "driver.open_order" in asked and "route.header" in asked and len(asked) > 200
    assert prefixes <= set(FAMILIES), (
        f"keys built from unknown prefixes: {prefixes - set(FAMILIES)}"
    )
    for prefix, names in FAMILIES.items():
        asked.update(prefix + name for name in names)
    missing = sorted(
        key
        for key in asked
        if not any(has(ENGLISH, k) for k in (key, f"msg.{key}", f"action.{key}"))
        and not key.startswith(tuple(f"{p}." for p in ("core", "bot", "web", "lastmile")))
    )
    assert missing == [], missing


@pytest.mark.parametrize("lang", sorted(CATALOGS))
def test_every_text_renders(lang: str):
    moment = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    for key, template in CATALOGS[lang].items():
        params = {name: moment if name in ("start", "end") else 7 for name in fields(template)}
        text = t(key, lang, **params) if not PLURAL.match(key) else template.format(**params)
        assert text.strip() and "{" not in text, (lang, key, text)


def test_plural_forms_follow_the_language():
    assert t("route.header", "en", count=1) == "Your route (1 stop):"
    assert t("route.header", "en", count=0) == "Your route (0 stops):"
    assert t("route.header", "en", count=21) == "Your route (21 stops):"
    assert t("order.attempts", "de", count=1) == "1 Zustellversuch"
    assert t("order.attempts", "de", count=3) == "3 Zustellversuche"
    assert t("route.header", "de", count=1) == "Your route (1 stop):"  # staff text: English
    assert t("route.header", "fr", count=2) == "Your route (2 stops):"  # no French: English
    with pytest.raises(KeyError):
        t("route.header", "en")  # a plural needs its count
    assert plural_forms("en") == plural_forms("de") == {"one", "other"}


def test_staff_read_english_and_dates_read_per_language():
    assert staff_language("de") == "en" and staff_language("en") == "en"
    assert staff_language(None) == "en"
    assert days(date(2026, 11, 25), date(2026, 11, 25), "en") == "Wed 25 Nov"
    assert days(date(2026, 11, 19), date(2026, 11, 25), "en") == "Thu 19 Nov\u2009–\u2009Wed 25 Nov"
    assert days(date(2026, 11, 25), date(2026, 11, 25), "de") == "Mi., 25. Nov."


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("where is my order?", True),
        ("When will it arrive", True),
        ("Wo ist meine Bestellung?", True),
        ("Wann kommt mein Paket?", True),
        ("Lieferstatus bitte", True),
        ("thanks!", False),
        ("Danke schön", False),
        ("wow", False),  # "wo" is a whole word, not a beginning
        ("", False),
    ],
)
def test_a_customer_question_in_any_language(text: str, asks: bool):
    assert asks_where(text) is asks
