"""Turn pydantic's validation errors into short sentences a person can act on."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pydantic import ValidationError

MESSAGES = {
    "missing": "is required",
    "float_parsing": "is not a number",
    "float_type": "is not a number",
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "int_type": "is not a whole number",
    "date_from_datetime_parsing": "is not a date like 2026-11-24",
    "date_parsing": "is not a date like 2026-11-24",
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
