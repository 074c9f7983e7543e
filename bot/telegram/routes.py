"""Handlers are declared once at import with decorators, like aiogram's Router, but an aiogram
Router can belong to one Dispatcher only; `Routes.build()` makes a fresh Router per bot (tests
and benchmarks run several bots in one process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiogram import Router

OBSERVERS = ("message", "edited_message", "callback_query")


class Routes:
    def __init__(self, name: str) -> None:
        self.name = name
        self.handlers: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []
        self.guards: list[tuple[str, Any]] = []
        self.children: list[Routes] = []

    def _on(self, observer: str, filters: tuple[Any, ...]) -> Callable[[Any], Any]:
        def register(callback: Callable[..., Any]) -> Callable[..., Any]:
            self.handlers.append((observer, callback, filters))
            return callback

        return register

    def message(self, *filters: Any) -> Callable[[Any], Any]:
        return self._on("message", filters)

    def edited_message(self, *filters: Any) -> Callable[[Any], Any]:
        return self._on("edited_message", filters)

    def callback_query(self, *filters: Any) -> Callable[[Any], Any]:
        return self._on("callback_query", filters)

    def my_chat_member(self, *filters: Any) -> Callable[[Any], Any]:
        return self._on("my_chat_member", filters)

    def guard(self, check: Any, observers: tuple[str, ...] = OBSERVERS) -> None:
        """A filter every handler of these observers must pass (e.g. a role)."""
        self.guards += [(observer, check) for observer in observers]

    def include(self, child: Routes) -> None:
        self.children.append(child)

    def build(self) -> Router:
        router = Router(name=self.name)
        for observer, check in self.guards:
            getattr(router, observer).filter(check)
        for observer, callback, filters in self.handlers:
            getattr(router, observer).register(callback, *filters)
        for child in self.children:
            router.include_router(child.build())
        return router
