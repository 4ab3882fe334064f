"""What went wrong while reading one message, for its record."""

from __future__ import annotations

MAX_DEFECTS = 50


class Defects:
    """What went wrong, in order, each once, capped."""

    def __init__(self) -> None:
        self._items: dict[str, None] = {}

    def add(self, text: str) -> None:
        if len(self._items) < MAX_DEFECTS:
            self._items.setdefault(text, None)

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(self._items)
