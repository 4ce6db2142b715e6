"""The manifest's YAML schema (pydantic models) and plain-words messages for its errors.

A run imports this only for a manifest that keys.py cannot vouch for (to word its error), and
`aihd schema` for the JSON Schema: pydantic's import and these models' build are a quarter of
a run's start-up. A key added here is added to keys.py too (tests/test_manifest_keys.py)."""

from __future__ import annotations

__all__ = [
    "ACCOUNT_PATTERN",
    "DEFAULT_PATTERNS",
    "ENV_NAME_PATTERN",
    "DefaultsModel",
    "DeliveryProfileModel",
    "FilePattern",
    "FolderModel",
    "ManifestModel",
    "RateLimitModel",
    "RetryModel",
    "Text",
    "explain",
]

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import ErrorDetails

from pipeline.manifest.keys import DEFAULT_PATTERNS

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
# Patterns match file names inside a folder; subfolders are `recursive`'s job.
FilePattern = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, pattern=r"^[^/\\]+$")
]


class _Strict(BaseModel):
    # strict: "four" is not 4 and true is not 1; extra="forbid": a typo is an error.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RateLimitModel(_Strict):
    """The account's order window (the API allows 10 orders per 600 s)."""

    orders: int = Field(default=10, ge=1, le=100_000, description="Orders allowed per window.")
    # At most a day: a longer window is a typo (1.0e308 would overflow the window's clock).
    per_seconds: float = Field(
        default=600.0,
        gt=0,
        le=86400,
        allow_inf_nan=False,
        description="Length of the window in seconds.",
    )


class RetryModel(_Strict):
    """Retries per request, for transient failures only."""

    attempts: int = Field(
        default=5, ge=1, le=20, description="Tries per request, the first included."
    )
    # At most an hour: a wait longer than that is a typo (1.0e308 would overflow the clock).
    max_backoff: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="Longest wait between tries, in seconds.",
    )


class DefaultsModel(_Strict):
    """Options applied to every folder; each folder may override each one."""

    space: Text = Field(default="indoor", description="indoor, outdoor, or a catalog space name.")
    enhancements: list[Text] = Field(
        default_factory=list, description="Enhancement titles (any case) or item ids."
    )
    tool: Text | None = Field(
        default=None,
        description="api: v3 only: the tool, image-enhancement (default), day-to-dusk, "
        "virtual-staging, ... (`aihd catalog --api v3` lists them).",
    )
    room: Text | None = Field(
        default=None, description="v3 staging, design and renovation tools: the room type."
    )
    style: Text | None = Field(
        default=None, description="v3 staging and design tools: the style (modern, ...)."
    )
    sky: Text | None = Field(
        default=None, description="v3 day-to-dusk and sky-change: the sky (golden-hour, ...)."
    )
    color: Text | None = Field(
        default=None, description="v3 interior-design: the colour palette (warm-tones, ...)."
    )
    material: Text | None = Field(
        default=None, description="v3 wall/floor/ceiling/backsplash change: the material."
    )
    darkness: Text | None = Field(default=None, description="v3 darkness: darker or lighter.")
    recursive: bool = Field(default=False, description="Also take photos from subfolders.")
    patterns: list[FilePattern] = Field(
        default_factory=lambda: list(DEFAULT_PATTERNS),
        min_length=1,
        description="File name globs of the photos to send.",
    )


class FolderModel(_Strict):
    """One folder of photos; keys left out come from `defaults`."""

    path: Text = Field(
        description=(
            "The folder, relative to the manifest's folder, or a glob of folders matched at "
            "each run (listings/*/inside, listings/**/exterior)."
        )
    )
    space: Text | None = Field(
        default=None, description="indoor, outdoor, or a catalog space name."
    )
    enhancements: list[Text] | None = Field(
        default=None, description="Enhancement titles (any case) or item ids."
    )
    recursive: bool | None = Field(default=None, description="Also take photos from subfolders.")
    patterns: Annotated[list[FilePattern], Field(min_length=1)] | None = Field(
        default=None, description="File name globs of the photos to send."
    )
    listing: Text | None = Field(
        default=None,
        description="The listing this folder's photos belong to, for `aihd deliver` "
        "(default: the folder above it, e.g. 12-oak-st for listings/12-oak-st/inside).",
    )

    exclude: list[Text] | None = Field(
        default=None,
        description="Globs of files to leave out: a name (broken.jpg) or a path below the "
        "folder (drafts/*).",
    )
    tool: Text | None = Field(
        default=None,
        description="api: v3 only: the tool, image-enhancement (default), day-to-dusk, "
        "virtual-staging, ... (`aihd catalog --api v3` lists them).",
    )
    room: Text | None = Field(
        default=None, description="v3 staging, design and renovation tools: the room type."
    )
    style: Text | None = Field(
        default=None, description="v3 staging and design tools: the style (modern, ...)."
    )
    sky: Text | None = Field(
        default=None, description="v3 day-to-dusk and sky-change: the sky (golden-hour, ...)."
    )
    color: Text | None = Field(
        default=None, description="v3 interior-design: the colour palette (warm-tones, ...)."
    )
    material: Text | None = Field(
        default=None, description="v3 wall/floor/ceiling/backsplash change: the material."
    )
    darkness: Text | None = Field(default=None, description="v3 darkness: darker or lighter.")
    project: Text | None = Field(
        default=None,
        description="api: v3 only: the address of the listing's project (default: the "
        "listing's name).",
    )
    upscale: bool | None = Field(
        default=None,
        description="api: v1 only: also upscale each enhanced photo (its file lands beside the "
        "enhanced one). The upscale arrives by webhook only: `aihd serve` does it.",
    )


class DeliveryProfileModel(_Strict):
    """How `aihd deliver` writes photos for one MLS: what it changes of the profile it extends
    (a key left out is that profile's; `aihd deliver --list-profiles` shows them)."""

    extends: Text | None = Field(
        default=None,
        description="The profile this one changes: a built-in (mls-default, crmls, stellar, "
        "smartmls, california, no-text) or another of the manifest's; default: the built-in of "
        "the same name, else mls-default.",
    )
    long_edge: int | None = Field(
        default=None, ge=64, le=20000, description="Longest side, px, at most."
    )
    max_megabytes: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        allow_inf_nan=False,
        description="Largest file, in MB (10^6 bytes).",
    )
    min_width: int | None = Field(
        default=None, ge=1, le=20000, description="Smallest width (landscape), px."
    )
    min_height: int | None = Field(
        default=None, ge=1, le=20000, description="Smallest height (landscape), px."
    )
    quality: int | None = Field(
        default=None, ge=30, le=100, description="First JPEG quality tried."
    )
    min_quality: int | None = Field(default=None, ge=10, le=100, description="Lowest JPEG quality.")
    exif: Literal["strip", "keep"] | None = Field(
        default=None, description="strip: none; keep: camera and copyright, never location."
    )
    aspect: Literal["keep", "pad-4:3"] | None = Field(
        default=None, description="keep the shape, or pad with plain bars to 4:3 landscape."
    )
    watermark: Literal["required", "forbidden", "optional"] | None = Field(
        default=None,
        description="Text on altered photos: required, forbidden, or optional (drawn when "
        "watermark_text is given).",
    )
    watermark_text: Text | None = Field(
        default=None, max_length=60, description="The watermark's words."
    )
    watermark_corner: Literal["bottom-right", "bottom-left", "top-right", "top-left"] | None = (
        Field(default=None, description="Where the watermark goes.")
    )
    description: Text | None = Field(
        default=None, max_length=50, description="Caption of an altered photo (50 characters)."
    )
    remarks_prefix: Text | None = Field(
        default=None,
        max_length=500,
        description="What public remarks must begin with when a photo is altered: remarks.txt.",
    )
    originals: Literal["none", "before", "after"] | None = Field(
        default=None, description="Where an altered photo's original goes in the order."
    )
    max_photos: int | None = Field(
        default=None, ge=0, description="Photos per listing, originals included; 0: no limit."
    )
    file_name: Text | None = Field(
        default=None,
        max_length=100,
        description="Name template: {order}, {stem}, {listing}; default '{order:02}-{stem}.jpg'.",
    )


class ManifestModel(_Strict):
    """An aihd manifest: which folders to enhance, and how."""

    model_config = ConfigDict(title="aihd manifest")

    version: Literal[1] = Field(description="Manifest format version; always 1.")
    ledger: Text | None = Field(
        default=None,
        description="Ledger file (default: the account's, under ~/.local/state/aihd/).",
    )
    account: str = Field(
        default="default",
        pattern=ACCOUNT_PATTERN,
        description="Which of your AI HomeDesign accounts this is: each has its own ledger "
        "and order window.",
    )
    output: Text = Field(default="enhanced", description="Folder `collect` writes results into.")
    api: Literal["v1", "v3"] = Field(
        default="v1",
        description="Which AI HomeDesign API to order through: v1 or v3 (AIHD_API_VERSION "
        "overrides it).",
    )
    concurrency: int = Field(default=4, ge=1, le=256, description="Photos in flight at once.")
    rate_limit: RateLimitModel = Field(default_factory=RateLimitModel)
    retry: RetryModel = Field(default_factory=RetryModel)
    api_key_env: str = Field(
        default="AIHD_API_KEY",
        pattern=ENV_NAME_PATTERN,
        description="Environment variable holding the API key (never the key itself).",
    )
    defaults: DefaultsModel = Field(default_factory=DefaultsModel)
    folders: list[FolderModel] = Field(min_length=1, description="The folders of photos.")
    delivery_profiles: dict[Text, DeliveryProfileModel] = Field(
        default_factory=dict, description="Named profiles for `aihd deliver --profile NAME`."
    )
    quiet_period: Text | float | None = Field(
        default=None,
        description="`aihd serve`: a photo is taken once its folder was quiet this long and its "
        "size held at two looks, e.g. 60s (the default) or 2m.",
    )
    rescan: Text | float | None = Field(
        default=None,
        description="`aihd serve`: look at every folder again this often, as a safety net for "
        "changes the watcher missed, e.g. 10m (the default).",
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_a_number(cls, value: object) -> object:
        # true == 1.0 == 1 in Python, so a bare Literal[1] would take `version: true` or 1.0.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("version must be the integer 1")
        return value


_MISSING = {
    "version": "the manifest needs 'version: 1' at the top",
    "folders": "the manifest needs a 'folders:' list, with one '- path: ...' entry per folder",
    "path": "each folder entry needs a 'path:' to the folder of photos",
}
_LIST_EXAMPLES = {
    "enhancements": '["Add Fire to Fireplace", "Add Screen to TV"]',
    "patterns": '["*.jpg", "*.png"]',
    "exclude": '["broken.jpg", "drafts/*"]',
    "folders": "one '- path: ...' entry per folder",
}
_MAPPING_EXAMPLES = {
    "rate_limit": "rate_limit: {orders: 10, per_seconds: 600}",
    "retry": "retry: {attempts: 5, max_backoff: 60}",
    "defaults": "defaults: {space: indoor, enhancements: []}",
}
_RANGE_HINTS = {
    "concurrency": " (photos in flight; 4 is a good start)",
    "orders": " (your account's order allowance per window; the API's is 10)",
    "per_seconds": " (the window in seconds; the API's is 600)",
    "attempts": " (tries per request; 5 is a good start)",
    "max_backoff": " (seconds; 60 is a good start)",
}


def explain(error: ErrorDetails) -> str:
    """Say what is wrong and how to fix it, without echoing text values (they may be secrets)."""
    loc = error["loc"]
    field = next((str(part) for part in reversed(loc) if isinstance(part, str)), "")
    kind, ctx, value = error["type"], error.get("ctx", {}), error.get("input")
    if field == "version" and kind != "missing":
        if isinstance(value, int) and not isinstance(value, bool):
            return f"unsupported manifest version {value}: this aihd reads 'version: 1'"
        return f"the version must be the number 1, not {_describe(value)}: write 'version: 1'"
    if kind == "missing":
        return _MISSING.get(field, f"required key {field!r} is missing: add it")
    if kind == "int_type":
        return f"must be a whole number, not {_describe(value)}{_RANGE_HINTS.get(field, '')}"
    if kind == "float_type":
        return f"must be a number, not {_describe(value)}{_RANGE_HINTS.get(field, '')}"
    if kind == "finite_number":
        return f"must be a finite number{_RANGE_HINTS.get(field, '')}"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        return _range_message(kind, ctx, value, field)
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length', 0)} characters"
    if kind == "bool_type":
        return f"must be true or false, not {_describe(value)}"
    if kind == "string_type":
        return f"must be text, not {_describe(value)}: put it in quotes"
    if kind in {"string_too_short", "too_short"} and isinstance(value, list):
        return f"must not be an empty list: give at least one, e.g. {_LIST_EXAMPLES.get(field)}"
    if kind in {"string_too_short", "too_short"}:
        return "must not be empty: give a value, or delete the key to use the default"
    if kind == "list_type":
        example = _LIST_EXAMPLES.get(field, "[...]")
        return f"must be a list, not {_describe(value)}: e.g. {example}"
    if kind in {"model_type", "dict_type", "model_attributes_type"}:
        example = _MAPPING_EXAMPLES.get(field, f"{field}: {{key: value}}")
        if isinstance(loc[-1], int):
            example = "- path: listings/12-oak-st/inside"
        return f"must be a mapping of keys, not {_describe(value)}: e.g. {example}"
    if kind == "string_pattern_mismatch" and field == "api_key_env":
        return (
            "must be the name of an environment variable, like AIHD_API_KEY "
            "(letters, digits and _, not starting with a digit), never the key itself"
        )
    if kind == "string_pattern_mismatch" and field == "account":
        return "must be a short name of letters, digits, '.', '_' or '-', e.g. oak-realty"
    if kind == "string_pattern_mismatch":
        return (
            "a pattern matches file names, not paths: drop the folder part "
            "(use 'recursive: true' to take photos from subfolders)"
        )
    return f"invalid value ({kind}): see `aihd schema` for what this key takes"


def _range_message(kind: str, ctx: dict[str, Any], value: object, field: str) -> str:
    words, limit = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }[kind]
    bound = f"{words} {ctx.get(limit, 0):g}"
    return f"must be {bound}, not {_describe(value)}{_RANGE_HINTS.get(field, '')}"


def _describe(value: object) -> str:
    """Name a bad value for a message; numbers are shown, text never (it may be a secret)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"
