"""Every key a manifest takes, its default, and a check of a well-written manifest without pydantic.

Importing pydantic and building the schema's models (schema.py) cost a quarter of an
``aihd run`` with nothing left to send: 0.43 G of its 1.69 G instructions. ``checked`` gives a
manifest's values exactly as ``ManifestModel.model_validate(raw).model_dump()`` does, in plain
Python, when it is sure of every value; for anything else (a wrong type, a bound crossed, text
with spaces around it, a key it does not know) it answers None and the loader asks pydantic,
whose errors are the messages users see. So pydantic stays the one judge of a bad manifest,
and tests/test_manifest_keys.py holds the two to the same values and the same keys.
"""

from __future__ import annotations

__all__ = [
    "DEFAULTS_KEYS",
    "DEFAULT_PATTERNS",
    "FOLDER_KEYS",
    "MANIFEST_KEYS",
    "PROFILE_KEYS",
    "RATE_LIMIT_KEYS",
    "RETRY_KEYS",
    "checked",
]

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

DEFAULT_PATTERNS = ("*.jpg", "*.jpeg", "*.png", "*.webp")


# What ``checked`` gives, for mypy: TypedDicts made at run time would cost more than all the
# checks (each of their annotations is compiled).
if TYPE_CHECKING:

    class RateLimitValues(TypedDict):
        orders: int
        per_seconds: float

    class RetryValues(TypedDict):
        attempts: int
        max_backoff: float

    class ToolValues(TypedDict):
        """The v3 tool and its choices, as defaults and each folder name them."""

        tool: str | None
        room: str | None
        style: str | None
        sky: str | None
        color: str | None
        material: str | None
        darkness: str | None

    class DefaultsValues(ToolValues):
        space: str
        enhancements: list[str]
        recursive: bool
        patterns: list[str]

    class FolderValues(ToolValues):
        path: str
        space: str | None
        enhancements: list[str] | None
        recursive: bool | None
        patterns: list[str] | None
        listing: str | None
        exclude: list[str] | None
        project: str | None
        upscale: bool | None

    class ProfileValues(TypedDict):
        extends: str | None
        long_edge: int | None
        max_megabytes: float | None
        min_width: int | None
        min_height: int | None
        quality: int | None
        min_quality: int | None
        exif: str | None
        aspect: str | None
        watermark: str | None
        watermark_text: str | None
        watermark_corner: str | None
        description: str | None
        remarks_prefix: str | None
        originals: str | None
        max_photos: int | None
        file_name: str | None

    class ManifestValues(TypedDict):
        version: int
        ledger: str | None
        account: str
        output: str
        api: Literal["v1", "v3"]
        concurrency: int
        rate_limit: RateLimitValues
        retry: RetryValues
        api_key_env: str
        defaults: DefaultsValues
        folders: list[FolderValues]
        delivery_profiles: dict[str, ProfileValues]
        quiet_period: str | float | None
        rescan: str | float | None


class _Unsure:
    """A value the plain check cannot vouch for: pydantic decides (and words the error)."""


_UNSURE = _Unsure()
Check = Callable[[object], object]  # the value as pydantic leaves it, or _UNSURE


def _required() -> object:
    """The default of a key that has none: a manifest without it is pydantic's to refuse."""
    return _UNSURE


def _text(max_length: int | None = None) -> Check:
    """schema.Text: text without spaces around it (pydantic would strip them: it decides),
    not empty, and encodable (pydantic refuses a lone surrogate)."""

    def check(value: object) -> object:
        if type(value) is not str or not value or value != value.strip():
            return _UNSURE
        if max_length is not None and len(value) > max_length:
            return _UNSURE
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                return _UNSURE
        return value

    return check


def _file_pattern(value: object) -> object:
    """schema.FilePattern: a Text with no / or \\ in it."""
    value = _TEXT(value)
    return _UNSURE if type(value) is not str or "/" in value or "\\" in value else value


def _int(low: int, high: float = math.inf) -> Check:
    """A strict int (true is not 1) within [low, high]."""

    def check(value: object) -> object:
        return value if type(value) is int and low <= value <= high else _UNSURE

    return check


def _float(high: float, low: float = 0.0) -> Check:
    """A strict, finite float above ``low`` and at most ``high``; an int is taken as a float."""

    def check(value: object) -> object:
        if type(value) is int or type(value) is float:
            return float(value) if low < value <= high else _UNSURE
        return _UNSURE

    return check


def _one_of(*choices: str) -> Check:
    return lambda value: value if type(value) is str and value in choices else _UNSURE


def _bool(value: object) -> object:
    return value if type(value) is bool else _UNSURE


def _optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def _list(item: Check, *, min_length: int = 0) -> Check:
    def check(value: object) -> object:
        if type(value) is not list or len(value) < min_length:
            return _UNSURE
        items = [item(element) for element in value]
        return _UNSURE if any(i is _UNSURE for i in items) else items

    return check


def _text_or_seconds(value: object) -> object:
    """schema's ``Text | float | None``: text as written, or a finite number as a float."""
    if type(value) is int:
        return float(value) if abs(value) < 2**53 else _UNSURE  # exactly a float
    if type(value) is float:
        return value if math.isfinite(value) else _UNSURE
    return _TEXT(value)


_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")


def _name(first: frozenset[str], rest: frozenset[str], longest: float = math.inf) -> Check:
    """Text whose first character is in ``first`` and the others in ``rest``: the patterns
    ACCOUNT_PATTERN and ENV_NAME_PATTERN of schema.py, without compiling a regex."""

    def check(value: object) -> object:
        if type(value) is not str or not value or len(value) > longest:
            return _UNSURE
        return value if value[0] in first and rest.issuperset(value[1:]) else _UNSURE

    return check


_TEXT = _text()
_OPTIONAL_TEXT = _optional(_TEXT)
_TEXTS = _list(_TEXT)

# Each model's keys in schema.py's order (the order `aihd` lists them in), with its check and
# default.
_Fields = Mapping[str, tuple[Check, Callable[[], object]]]


def _absent() -> None:
    return None


_RATE_LIMIT: _Fields = {
    "orders": (_int(1, 100_000), lambda: 10),
    "per_seconds": (_float(86400), lambda: 600.0),
}
_RETRY: _Fields = {
    "attempts": (_int(1, 20), lambda: 5),
    "max_backoff": (_float(3600), lambda: 60.0),
}
_TOOL_CHOICES: _Fields = {
    key: (_OPTIONAL_TEXT, _absent)
    for key in ("tool", "room", "style", "sky", "color", "material", "darkness")
}
_DEFAULTS: _Fields = {
    "space": (_TEXT, lambda: "indoor"),
    "enhancements": (_TEXTS, list),
    **_TOOL_CHOICES,
    "recursive": (_bool, lambda: False),
    "patterns": (_list(_file_pattern, min_length=1), lambda: list(DEFAULT_PATTERNS)),
}
_FOLDER: _Fields = {
    "path": (_TEXT, _required),
    "space": (_OPTIONAL_TEXT, _absent),
    "enhancements": (_optional(_TEXTS), _absent),
    "recursive": (_optional(_bool), _absent),
    "patterns": (_optional(_list(_file_pattern, min_length=1)), _absent),
    "listing": (_OPTIONAL_TEXT, _absent),
    "exclude": (_optional(_TEXTS), _absent),
    **_TOOL_CHOICES,
    "project": (_OPTIONAL_TEXT, _absent),
    "upscale": (_optional(_bool), _absent),
}
_PROFILE: _Fields = {
    "extends": (_OPTIONAL_TEXT, _absent),
    "long_edge": (_optional(_int(64, 20000)), _absent),
    "max_megabytes": (_optional(_float(1000)), _absent),
    "min_width": (_optional(_int(1, 20000)), _absent),
    "min_height": (_optional(_int(1, 20000)), _absent),
    "quality": (_optional(_int(30, 100)), _absent),
    "min_quality": (_optional(_int(10, 100)), _absent),
    "exif": (_optional(_one_of("strip", "keep")), _absent),
    "aspect": (_optional(_one_of("keep", "pad-4:3")), _absent),
    "watermark": (_optional(_one_of("required", "forbidden", "optional")), _absent),
    "watermark_text": (_optional(_text(60)), _absent),
    "watermark_corner": (
        _optional(_one_of("bottom-right", "bottom-left", "top-right", "top-left")),
        _absent,
    ),
    "description": (_optional(_text(50)), _absent),
    "remarks_prefix": (_optional(_text(500)), _absent),
    "originals": (_optional(_one_of("none", "before", "after")), _absent),
    "max_photos": (_optional(_int(0)), _absent),
    "file_name": (_optional(_text(100)), _absent),
}


def _model(fields: _Fields) -> Check:
    """A mapping of the model's keys only (pydantic forbids others), each checked; the keys
    left out take their defaults."""

    def check(value: object) -> object:
        if type(value) is not dict or not value.keys() <= fields.keys():
            return _UNSURE
        values = {}
        for key, (check_value, default) in fields.items():
            values[key] = check_value(value[key]) if key in value else default()
            if values[key] is _UNSURE:
                return _UNSURE
        return values

    return check


def _profiles(value: object) -> object:
    if type(value) is not dict:
        return _UNSURE
    profiles = {name: _PROFILE_CHECK(profile) for name, profile in value.items()}
    if any(_TEXT(name) is _UNSURE or p is _UNSURE for name, p in profiles.items()):
        return _UNSURE
    return profiles


def _version(value: object) -> object:
    return value if type(value) is int and value == 1 else _UNSURE


_PROFILE_CHECK = _model(_PROFILE)
_RATE_LIMIT_CHECK = _model(_RATE_LIMIT)
_RETRY_CHECK = _model(_RETRY)
_DEFAULTS_CHECK = _model(_DEFAULTS)
_MANIFEST: _Fields = {
    "version": (_version, _required),
    "ledger": (_OPTIONAL_TEXT, _absent),
    "account": (
        _name(_LETTERS | _DIGITS, _LETTERS | _DIGITS | set("._-"), longest=64),
        lambda: "default",
    ),
    "output": (_TEXT, lambda: "enhanced"),
    "api": (_one_of("v1", "v3"), lambda: "v1"),
    "concurrency": (_int(1, 256), lambda: 4),
    "rate_limit": (_RATE_LIMIT_CHECK, lambda: _RATE_LIMIT_CHECK({})),
    "retry": (_RETRY_CHECK, lambda: _RETRY_CHECK({})),
    "api_key_env": (_name(_LETTERS | {"_"}, _LETTERS | _DIGITS | {"_"}), lambda: "AIHD_API_KEY"),
    "defaults": (_DEFAULTS_CHECK, lambda: _DEFAULTS_CHECK({})),
    "folders": (_list(_model(_FOLDER), min_length=1), _required),
    "delivery_profiles": (_profiles, dict),
    "quiet_period": (_optional(_text_or_seconds), _absent),
    "rescan": (_optional(_text_or_seconds), _absent),
}
_MANIFEST_CHECK = _model(_MANIFEST)

MANIFEST_KEYS = tuple(_MANIFEST)
RATE_LIMIT_KEYS = tuple(_RATE_LIMIT)
RETRY_KEYS = tuple(_RETRY)
DEFAULTS_KEYS = tuple(_DEFAULTS)
FOLDER_KEYS = tuple(_FOLDER)
PROFILE_KEYS = tuple(_PROFILE)


def checked(raw: dict[Any, Any]) -> ManifestValues | None:
    """The manifest's values as pydantic would give them, or None: ask pydantic."""
    values = _MANIFEST_CHECK(raw)
    return None if values is _UNSURE else cast("ManifestValues", values)
