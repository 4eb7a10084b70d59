"""The terminal console every command prints with."""

from __future__ import annotations

from typing import Any

import rich.console


class Console(rich.console.Console):
    """rich's console without emoji codes: a file named ``:camera:.jpg`` is printed as it is
    named, not as a picture (``markup=False`` leaves emoji codes on)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("emoji", False)
        super().__init__(**kwargs)
