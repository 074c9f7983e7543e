"""Errors a person can cause carry a message they can read."""

from __future__ import annotations

from core.texts import t


class DomainError(Exception):
    """A refused request. `str(error)` is the English message; `message(lang)` in another."""

    def __init__(self, key: str, /, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params

    def message(self, lang: str | None = None) -> str:
        return t(self.key, lang, **self.params)

    def __str__(self) -> str:
        return self.message()


class NotFound(DomainError):
    pass
