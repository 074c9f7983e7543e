"""What any database keeps, and pydantic's validation errors as short sentences a person can
act on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated

from pydantic import AfterValidator, ValidationError

MAX_ID = 2**31 - 1  # ids are 32-bit integers in PostgreSQL


def unstorable(value: str) -> str | None:
    """Why no database can keep this text (PostgreSQL refuses NUL characters; a lone surrogate
    is no Unicode at all), or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    return None


def storable(value: str) -> str:
    """`value`, or ValueError when no database can keep it."""
    if why := unstorable(value):
        raise ValueError(why)
    return value


Text = Annotated[str, AfterValidator(storable)]


def kept_as_text(value: str) -> str:
    """`value` with what no database can keep (NUL characters, lone surrogates) replaced by
    U+FFFD: for text a person did not type for us, such as their name on a messenger."""
    if unstorable(value) is None:
        return value
    return "".join("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in value)


MESSAGES = {
    "missing": "is required",
    "float_parsing": "is not a number",
    "float_type": "is not a number",
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "int_type": "is not a whole number",
    "date_from_datetime_parsing": "is not a date like 2026-11-24",
    "date_parsing": "is not a date like 2026-11-24",
    "bool_parsing": "is not true or false",
    "bool_type": "is not true or false",
    "time_parsing": "is not a time of day like 20:00",
    "time_type": "is not a time of day like 20:00",
    "string_too_short": "is empty",
    "string_too_long": "is longer than {max_length} characters",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "string_pattern_mismatch": "has the wrong form",
    "enum": "must be one of: {expected}",
    "literal_error": "must be one of: {expected}",
}


def describe(
    error: ValidationError,
    names: Mapping[str, str] | None = None,
    *,
    label_of: Callable[[tuple[int | str, ...]], str] | None = None,
) -> list[str]:
    """One sentence per problem, naming the field as the person knows it.

    `names` maps a field to the name the person used (a CSV column); `label_of` builds the
    name from the whole location instead (an environment variable).
    """
    names = names or {}
    sentences = []
    for item in error.errors():
        if label_of is not None:
            label = label_of(item["loc"])
        else:
            field = str(item["loc"][0]) if item["loc"] else ""
            label = names.get(field, field)
        template = MESSAGES.get(item["type"])
        if template is not None:
            text = template.format(**item.get("ctx", {}))
        else:
            text = item["msg"].removeprefix("Value error, ")
        sentences.append(f"{label} {text}" if label else text)
    return sentences
