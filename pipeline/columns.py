"""Columns that stay aligned in a terminal, whatever the folder names hold."""

from __future__ import annotations

__all__ = ["pad", "width"]

import unicodedata


def width(text: str) -> int:
    """Terminal cells: wide (CJK) characters take two, combining marks none."""
    cells = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        cells += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return cells


def pad(text: str, cells: int) -> str:
    """``text`` left-aligned in ``cells`` terminal cells."""
    return text + " " * max(0, cells - width(text))
