"""Which reading of each v3 unknown (docs/api/AIHOMEDESIGN_V3.md 13) the local emulator plays.

The v3 notes leave several shapes open; the emulator can play either reading of each, so the
client is tested against both. The defaults are what the official MCP server
(``AIHomeDesign/aihomedesign-mcp``) saw or sends live, since that is the only code known to have
talked to the real v3 API: answers wrapped in ``{"data": ..., "message": "ok"}``, a list
``process_ids`` from ``POST /process``, the singular ``asset_role`` field, ``project_id``
optional on ``POST /order`` (the order-page docs), ``src`` beside ``temp_src`` in results
(the MCP reads ``src`` first), and a default for a widget it leaves out. The window counts
process creations, as the rate-limit page's "generates" suggests. docs/v3-readings.md keeps the
evidence for each default, and which line to change when the live API shows otherwise.
"""

from __future__ import annotations

__all__ = ["CHOICES", "FLAGS", "NUMBERS", "V3Readings", "readings_from_json", "readings_from_pairs"]

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class V3Readings:
    """One reading per v3 unknown; the defaults are the live one (see the module docstring)."""

    # Success bodies: {"data": ..., "message": "ok"} (+ "pagination" on lists), or bare.
    envelope: Literal["wrapped", "bare"] = "wrapped"
    # POST /process answers {"process_ids": [id]} or {"process_id": id}.
    process_id_field: Literal["process_ids", "process_id"] = "process_ids"
    # The role form field POST /order accepts; the other name is a 400 "wrong asset role".
    role_field: Literal["asset_role", "asset_roles"] = "asset_role"
    # POST /order without project_id: a 400, or the order goes to the account's default project.
    project_id: Literal["optional", "required"] = "optional"
    # GET /order processes[] entries carry their id as "id" or "process_id", and maybe "tool".
    process_entry_id: Literal["id", "process_id"] = "id"
    process_entry_tool: bool = True
    # final_assets[] carry a lasting "src" beside temp_src, or temp_src only.
    result_src: bool = True
    # temp_src and temp_thumbnail_src expire this many seconds after their GET (0: never).
    temp_link_seconds: float = 0.0
    # The account's window (shared with v1 orders) counts POST /process or POST /order ...
    window_counts: Literal["processes", "orders"] = "processes"
    # ... and, if set, also refuses while as many processes as the window allows are unfinished.
    window_in_flight: bool = False
    # The order's status while a process runs, and once its last process is done.
    active_status: Literal["active", "processing"] = "active"
    done_status: Literal["done", "completed"] = "done"
    # A widget the vendor's catalog marks required that its own client leaves out (day to
    # dusk's sky, the renovation tools' room and material): the API picks one, or a 422.
    omitted_widgets: Literal["defaulted", "refused"] = "defaulted"


CHOICES: dict[str, tuple[str, ...]] = {
    "envelope": ("wrapped", "bare"),
    "process_id_field": ("process_ids", "process_id"),
    "role_field": ("asset_role", "asset_roles"),
    "project_id": ("optional", "required"),
    "process_entry_id": ("id", "process_id"),
    "window_counts": ("processes", "orders"),
    "active_status": ("active", "processing"),
    "done_status": ("done", "completed"),
    "omitted_widgets": ("defaulted", "refused"),
}
FLAGS = ("process_entry_tool", "result_src", "window_in_flight")
NUMBERS = ("temp_link_seconds",)


def readings_from_json(fields: object) -> V3Readings:
    """Readings from a JSON object of V3Readings fields (others default); ValueError says why."""
    if not isinstance(fields, dict):
        raise ValueError("expected a JSON object of V3Readings fields")
    known = {f.name for f in dataclasses.fields(V3Readings)}
    if unknown := sorted(set(fields) - known):
        raise ValueError(f"unknown fields {unknown}; known: {sorted(known)}")
    for name, value in fields.items():
        if name in CHOICES and value not in CHOICES[name]:
            raise ValueError(f"{name} must be one of {list(CHOICES[name])}, not {value!r}")
        if name in FLAGS and not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, not {value!r}")
        if name in NUMBERS and (
            not isinstance(value, int | float) or isinstance(value, bool) or value < 0
        ):
            raise ValueError(f"{name} must be a number >= 0, not {value!r}")
    return V3Readings(**fields)


def readings_from_pairs(pairs: Iterable[str]) -> V3Readings:
    """Readings from NAME=VALUE texts (the `aihd sandbox --v3` option); ValueError says why."""
    fields: dict[str, object] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        name = name.strip().replace("-", "_")
        text = text.strip()
        if not equals:
            raise ValueError(f"{pair!r}: expected NAME=VALUE, e.g. envelope=bare")
        if name in FLAGS:
            if text.lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError(f"{name} must be true or false, not {text!r}")
            fields[name] = text.lower() in ("true", "yes", "1")
        elif name in NUMBERS:
            try:
                fields[name] = float(text)
            except ValueError:
                raise ValueError(f"{name} must be a number >= 0, not {text!r}") from None
        else:
            fields[name] = text
    return readings_from_json(fields)
