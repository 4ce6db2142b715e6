"""keys.py's plain check vouches only for what pydantic takes, and gives pydantic's values.

The loader trusts ``checked`` and asks pydantic only when it answers None, so a value it took
that pydantic refuses (or gave back otherwise) would change what a run does: every key, one at a
time, with values at and beside its bounds and of every wrong type; then random manifests.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from pipeline.manifest import keys
from pipeline.manifest.keys import checked
from pipeline.manifest.safe_yaml import load_yaml
from pipeline.manifest.schema import (
    DefaultsModel,
    DeliveryProfileModel,
    FolderModel,
    ManifestModel,
    RateLimitModel,
    RetryModel,
)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_manifests"

# fmt: off
_NUMBERS = [
    *(n for bound in (0, 1, 10, 20, 30, 64, 100, 256, 1000, 3600, 20000, 86400, 100_000)
      for n in (bound - 1, bound, bound + 1)),
    0.0, -0.0, 0.5, 1.0, 4.0, 59.5, 600.0, 86400.0, 86400.5, 1000.0, 1000.1, 1e-300, 1e308,
    math.inf, -math.inf, math.nan, 10**30, 2**63, 2**53, 2**53 + 1, 10**400,
]
_TEXTS = [
    "", " ", "x", " x", "x ", "x\n", "\tx", "\u00a0x", "x\u3000", "\x1cx", "x\x1f", "\x00",
    "é", "a b", "a/b", "a\\b", "*.jpg", "*.JPG", "drafts/*", "\ud800", "x\udfff",
    "v1", "v3", "v2", "V1", "1", "indoor", "strip", "keep", "pad-4:3", "required", "forbidden",
    "optional", "bottom-right", "top-left", "none", "before", "after", "mls-default",
    "oak-realty", "a.b_c-d", "-a", ".a", "_a", "A1", "1A", "AIHD_API_KEY", "MY KEY", "ключ",
    "10m", "60s", "1h30m", " 10m", "x" * 49, "x" * 50, "x" * 51, "x" * 60, "x" * 61,
    "x" * 64, "x" * 65, "x" * 100, "x" * 101, "x" * 500, "x" * 501,
]
_OTHERS: list[object] = [None, True, False, [], ["x"], [" x"], ["x", "x"], ["a/b"], [1], [None],
                         {}, {"a": 1}, {"path": "inside"}, ("x",), b"x"]
# fmt: on
VALUES: list[object] = [*_NUMBERS, *_TEXTS, *_OTHERS]

MINIMAL: dict[str, Any] = {"version": 1, "folders": [{"path": "inside"}]}


def _pydantic(raw: object) -> dict[str, Any] | None:
    try:
        return ManifestModel.model_validate(raw).model_dump()
    except ValidationError:
        return None


def _same(ours: object, theirs: object) -> bool:
    """Equal, and of the same types all the way down (1 == 1.0 == True in Python)."""
    if type(ours) is not type(theirs):
        return False
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return list(ours) == list(theirs) and all(_same(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(_same, ours, theirs))
    if isinstance(ours, float) and isinstance(theirs, float) and math.isnan(ours):
        return math.isnan(theirs)
    return ours == theirs


def _agrees(raw: dict[str, Any]) -> None:
    ours = checked(raw)
    if ours is not None:
        theirs = _pydantic(raw)
        assert theirs is not None, f"keys.py took what pydantic refuses: {raw!r}"
        assert _same(ours, theirs), f"{raw!r}: keys.py {ours!r}, pydantic {theirs!r}"


@pytest.mark.parametrize(
    ("names", "model"),
    [
        (keys.MANIFEST_KEYS, ManifestModel),
        (keys.RATE_LIMIT_KEYS, RateLimitModel),
        (keys.RETRY_KEYS, RetryModel),
        (keys.DEFAULTS_KEYS, DefaultsModel),
        (keys.FOLDER_KEYS, FolderModel),
        (keys.PROFILE_KEYS, DeliveryProfileModel),
    ],
)
def test_each_model_has_the_keys_of_its_schema_in_order(
    names: tuple[str, ...], model: type[BaseModel]
) -> None:
    """The keys an unknown key's message lists, and the order it lists them in, are schema.py's."""
    assert names == tuple(model.model_fields)


def _places() -> list[tuple[str, Any]]:
    """Every key of every model, as a function putting a value there in a minimal manifest."""
    places: list[tuple[str, Any]] = []
    for key in keys.MANIFEST_KEYS:
        places.append((key, lambda value, key=key: {**MINIMAL, key: value}))
    for part, names in (
        ("rate_limit", keys.RATE_LIMIT_KEYS),
        ("retry", keys.RETRY_KEYS),
        ("defaults", keys.DEFAULTS_KEYS),
    ):
        for key in names:
            places.append(
                (f"{part}.{key}", lambda value, p=part, k=key: {**MINIMAL, p: {k: value}})
            )
    for key in keys.FOLDER_KEYS:
        places.append(
            (
                f"folders[0].{key}",
                lambda value, k=key: {**MINIMAL, "folders": [{"path": "inside", k: value}]},
            )
        )
    for key in keys.PROFILE_KEYS:
        places.append(
            (
                f"delivery_profiles.crmls.{key}",
                lambda value, k=key: {**MINIMAL, "delivery_profiles": {"crmls": {k: value}}},
            )
        )
    places.append(
        (
            "delivery_profiles name",
            lambda value: (
                {**MINIMAL, "delivery_profiles": {value: {}}} if isinstance(value, str) else MINIMAL
            ),
        )
    )
    return places


def test_every_key_with_every_kind_of_value_gets_pydantics_answer() -> None:
    """Bounds and one beside them, ints and floats, text with spaces, too long, wrong types."""
    tried = took = 0
    for _, place in _places():
        for value in VALUES:
            raw = place(value)
            _agrees(raw)
            tried += 1
            took += checked(raw) is not None
    assert took > tried // 5  # the plain check does take the values it is meant to


def test_manifests_as_people_write_them_need_no_pydantic() -> None:
    """The samples and a manifest using every key: the plain check takes them, as pydantic."""
    every_key = {
        "version": 1,
        "ledger": "listings.ledger.sqlite",
        "account": "oak-realty",
        "output": "enhanced",
        "api": "v3",
        "concurrency": 8,
        "rate_limit": {"orders": 10, "per_seconds": 600},
        "retry": {"attempts": 5, "max_backoff": 60.0},
        "api_key_env": "OAK_AIHD_KEY",
        "defaults": {
            "space": "indoor",
            "enhancements": ["Add Fire to Fireplace"],
            "tool": "virtual-staging",
            "room": "living-room",
            "style": "modern",
            "recursive": True,
            "patterns": ["*.jpg", "*.JPG"],
        },
        "folders": [
            {
                "path": "listings/*/inside",
                "space": "outdoor",
                "enhancements": [],
                "recursive": False,
                "patterns": ["*.png"],
                "listing": "12-oak-st",
                "exclude": ["drafts/*"],
                "sky": "golden-hour",
                "project": "12 Oak St",
                "upscale": False,
            },
        ],
        "delivery_profiles": {
            "crmls": {
                "long_edge": 2048,
                "max_megabytes": 5,
                "quality": 85,
                "watermark": "optional",
                "watermark_text": "Virtually staged",
                "description": "Virtually staged",
                "file_name": "{order:02}-{stem}.jpg",
            },
        },
        "quiet_period": "90s",
        "rescan": 600,
    }
    manifests = [every_key, *(load_yaml(path)[0] for path in sorted(SAMPLES.glob("*.yaml")))]
    for raw in manifests:
        assert checked(raw) is not None, raw
        _agrees(raw)


_values = st.sampled_from(VALUES) | st.integers() | st.floats() | st.text(max_size=8)


def _mapping(names: tuple[str, ...], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Some of a model's keys (now and then one it does not have), or a value of another kind."""
    known = st.dictionaries(st.sampled_from(names), values, max_size=len(names))
    return known | st.dictionaries(st.sampled_from([*names, "spaec"]), values, max_size=3)


_manifests = st.fixed_dictionaries(
    {
        "version": st.just(1) | _values,
        "folders": st.lists(_mapping(keys.FOLDER_KEYS, _values), max_size=3) | _values,
    },
    optional={
        key: _values
        for key in keys.MANIFEST_KEYS
        if key not in ("version", "folders", "rate_limit", "retry", "defaults")
    }
    | {
        "rate_limit": _mapping(keys.RATE_LIMIT_KEYS, _values) | _values,
        "retry": _mapping(keys.RETRY_KEYS, _values) | _values,
        "defaults": _mapping(keys.DEFAULTS_KEYS, _values) | _values,
        "delivery_profiles": st.dictionaries(
            st.sampled_from(["crmls", " crmls", "", "no-text"]),
            _mapping(keys.PROFILE_KEYS, _values),
            max_size=2,
        )
        | _values,
    },
)


@given(raw=_manifests)
def test_random_manifests_get_pydantics_answer(raw: dict[str, Any]) -> None:
    """Many keys at once, each of any kind: whatever keys.py takes, pydantic takes alike."""
    _agrees(raw)
