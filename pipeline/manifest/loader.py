"""The manifest: strict, safe loading of a run's YAML into frozen records.

Every problem is a ``ManifestError`` naming the file, line and key, and saying how to fix it.
Space and enhancement names are not checked here: the catalog resolves them against the live API.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pipeline.api.v3_slugs import CHOICE_KEYS, DEFAULT_TOOL, build_spec, tool_name
from pipeline.errors import ManifestError, ToolOptionError, UsageError
from pipeline.ledger.stores import is_url
from pipeline.manifest.folders import (
    Options,
    Written,
    assign,
    expand,
    is_pattern,
    relative,
    shorten,
    split_pattern,
)
from pipeline.manifest.keys import (
    DEFAULT_PATTERNS,
    DEFAULTS_KEYS,
    FOLDER_KEYS,
    MANIFEST_KEYS,
    PROFILE_KEYS,
    RATE_LIMIT_KEYS,
    RETRY_KEYS,
    checked,
)
from pipeline.manifest.paths import (
    absolute,
    clear_cache,
    is_,
    line_of,
    output_conflict,
    photo_roots,
    resolve,
    resolve_match,
)
from pipeline.manifest.profiles import (
    BUILT_IN,
    MLS_DEFAULT,
    DeliveryProfile,
    extend,
    profile_problem,
)
from pipeline.manifest.safe_yaml import KeyPath, LineMap, dotted_key, load_yaml

if TYPE_CHECKING:  # pydantic is imported only for a manifest keys.py cannot vouch for
    from pydantic import ValidationError

    from pipeline.manifest.keys import DefaultsValues, FolderValues, ManifestValues, ProfileValues

__all__ = [
    "DEFAULT_PATTERNS",
    "FolderSpec",
    "Manifest",
    "RateLimit",
    "RetryPolicy",
    "load_manifest",
    "manifest_json_schema",
    "output_conflict",
    "refuse_output_over_photos",
]

# Key names that would hold the API key itself; compared after lower-casing and "-" -> "_".
_API_KEY_NAMES = frozenset({"api_key", "apikey", "key", "x_api_key", "api_token", "token"})

# The keys of each nested mapping of the top level (lists of folders are handled apart).
_NESTED = {"rate_limit": RATE_LIMIT_KEYS, "retry": RETRY_KEYS, "defaults": DEFAULTS_KEYS}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The account's order window: at most ``orders`` order submissions per ``per_seconds``."""

    orders: int = 10
    per_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries per request, for transient failures only."""

    attempts: int = 5
    max_backoff: float = 60.0


@dataclass(frozen=True, slots=True)
class FolderSpec:
    """One folder of photos and the options every photo in it is sent with."""

    path: Path
    name: str
    space: str
    enhancements: tuple[str, ...]
    recursive: bool
    patterns: tuple[str, ...]
    line: int
    space_line: int
    enhancements_line: int
    exclude: tuple[str, ...] = ()  # globs of files (name, or path below the folder) to skip
    claimed: frozenset[str] = frozenset()  # folders below with entries of their own: skipped
    through: frozenset[str] = frozenset()  # likewise but not recursive: their subfolders are ours
    listing: str = ""  # the listing `aihd deliver` groups it under (see listings.py)
    # api: v3 only (pipeline.api.v3_slugs): the tool and its options, each with its line
    tool: str = DEFAULT_TOOL
    choices: tuple[tuple[str, str], ...] = ()  # room, style, sky, ... as written (CHOICE_KEYS)
    project: str = ""  # the listing project's address ("" : the listing's name)
    option_lines: tuple[tuple[str, int], ...] = ()  # tool, its choices, project -> line
    upscale: bool = False  # v1: upscale each result too (by `aihd serve`: a webhook brings it)

    def line_of(self, key: str) -> int:
        """The line that wrote ``key`` for this folder (the folder's own line if none did)."""
        return dict(self.option_lines).get(key, self.line)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A loaded manifest; every path in it is absolute."""

    path: Path
    version: int
    ledger: Path | str | None  # None: the account's; str: a postgresql:// URL
    output: Path
    concurrency: int
    rate_limit: RateLimit
    retry: RetryPolicy
    api_key_env: str
    folders: tuple[FolderSpec, ...]
    warnings: tuple[str, ...] = ()  # folders gone or patterns matching none: skipped tonight
    matches: tuple[tuple[str, int, tuple[str, ...]], ...] = ()  # (path as written, line, folders)
    photo_roots: tuple[tuple[Path, int, int], ...] = ()  # never output here: (folder, entry, line)
    account: str = "default"
    delivery_profiles: Mapping[str, DeliveryProfile] = field(default_factory=dict)
    api: str = "v1"  # which API orders the photos: v1 or v3 (AIHD_API_VERSION overrides it)
    quiet_period: float = 60.0  # `aihd serve`: seconds a folder must be quiet (completeness.py)
    rescan: float = 600.0  # `aihd serve`: seconds between full looks at every folder

    @property
    def upscales(self) -> tuple[FolderSpec, ...]:
        """The folders whose photos are upscaled too."""
        return tuple(folder for folder in self.folders if folder.upscale)

    @property
    def legacy_ledger(self) -> Path:
        """Where aihd before the account ledger kept this manifest's ledger (imported once)."""
        return self.path.with_name(f"{self.path.stem}.ledger.sqlite")


def load_manifest(path: Path, *, strict: bool = False) -> Manifest:
    """Load and check a manifest; raise ManifestError naming the file, line and key.

    A folder that is gone, or a pattern that matches none, is a warning in
    ``Manifest.warnings`` (that folder is skipped), or an error when ``strict``.
    """
    clear_cache()
    raw, lines = load_yaml(path)
    if not isinstance(raw, dict):
        kind = "a list" if isinstance(raw, list) else "a single value"
        raise ManifestError(
            f"the top level must be a mapping of keys (version, folders, ...), not {kind}",
            path=path,
            line=lines[()],
        )
    _refuse_api_keys(raw, (), lines, path)
    _check_keys(raw, MANIFEST_KEYS, (), lines, path)
    model = checked(raw) or _validated(raw, lines, path)
    chosen = os.environ.get(API_VERSION_ENV, "").strip()
    if chosen:
        if chosen not in ("v1", "v3"):
            raise ManifestError(
                f"{API_VERSION_ENV}={chosen!r}: expected v1 or v3 (or unset it to use the "
                "manifest's api:)",
                path=path,
            )
        model["api"] = "v3" if chosen == "v3" else "v1"
    return _build(model, path, lines, strict)


def _validated(raw: dict[Any, Any], lines: LineMap, path: Path) -> ManifestValues:
    """The manifest's values by pydantic's schema, or its first error as a ManifestError."""
    from pydantic import ValidationError

    from pipeline.manifest.schema import ManifestModel

    try:
        model = ManifestModel.model_validate(raw)
    except ValidationError as exc:
        # Not chained: pydantic's own text repeats the values, and one of them may be a secret.
        raise _first_error(exc, lines, path) from None
    return cast("ManifestValues", model.model_dump())


API_VERSION_ENV = "AIHD_API_VERSION"


def manifest_json_schema() -> dict[str, object]:
    """The JSON Schema of the manifest's YAML, for editors and `aihd schema`."""
    from pipeline.manifest.schema import ManifestModel

    schema: dict[str, object] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    schema.update(ManifestModel.model_json_schema())
    return schema


def _refuse_api_keys(value: object, where: KeyPath, lines: LineMap, path: Path) -> None:
    """Refuse anything that looks like an API key, anywhere, without ever echoing its value."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_api_keys(item, (*where, index), lines, path)
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        here = (*where, key)
        if key.strip().lower().replace("-", "_") in _API_KEY_NAMES:
            raise ManifestError(
                "the API key never lives in the manifest: set AIHD_API_KEY (or api_key_env) "
                "in the environment and delete this key from the file",
                path=path,
                line=lines[here],
                key=dotted_key(here),
            )
        _refuse_api_keys(item, here, lines, path)


def _check_keys(
    value: object, allowed: tuple[str, ...], where: KeyPath, lines: LineMap, path: Path
) -> None:
    """Refuse unknown keys (with a suggestion) and keys written without a value."""
    if not isinstance(value, dict):
        return  # the wrong type is reported by validation, with its own message
    for key, item in value.items():
        here = (*where, key)
        if key not in allowed:
            import difflib  # for a typo only: a run's start-up does without it

            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed here: {', '.join(allowed)}"
            raise ManifestError(
                f"unknown key {key!r}: {hint}",
                path=path,
                line=lines[here],
                key=dotted_key(where),
            )
        if item is None:
            raise ManifestError(
                "has no value: give it one, or delete the key to use the default",
                path=path,
                line=lines[here],
                key=dotted_key(here),
            )
        if where:
            continue  # only the top level's mappings hold mappings with keys of their own
        if key == "folders" and isinstance(item, list):
            for index, folder in enumerate(item):
                _check_keys(folder, FOLDER_KEYS, (*here, index), lines, path)
        elif key == "delivery_profiles" and isinstance(item, dict):
            for name, profile in item.items():
                _check_keys(profile, PROFILE_KEYS, (*here, name), lines, path)
        elif key in _NESTED:
            _check_keys(item, _NESTED[key], here, lines, path)


def _first_error(exc: ValidationError, lines: LineMap, path: Path) -> ManifestError:
    """Translate the earliest (by line) validation error into a ManifestError."""
    errors = exc.errors(include_url=False, include_input=True)
    located = sorted(
        ((line_of(lines, tuple(error["loc"])), n, error) for n, error in enumerate(errors)),
        key=lambda entry: (entry[0], entry[1]),
    )
    line, _, error = located[0]
    where = tuple(error["loc"])
    from pipeline.manifest.schema import explain

    message = explain(error)
    if len(errors) > 1:
        others = len(errors) - 1
        message += f" (and {others} more problem{'s' if others > 1 else ''} after it)"
    return ManifestError(message, path=path, line=line, key=dotted_key(where))


def _build(model: ManifestValues, path: Path, lines: LineMap, strict: bool) -> Manifest:
    """Turn validated values into records with absolute paths, checking them on disk."""
    base = path.resolve().parent
    written_ledger = model["ledger"]
    ledger: Path | str | None = written_ledger
    if written_ledger is not None and not is_url(written_ledger):
        ledger = absolute(written_ledger, base, path, lines, ("ledger",))
    if isinstance(ledger, Path) and is_(ledger.is_dir):
        raise ManifestError(
            f"{shorten(ledger)} is a folder: name a file for the ledger (e.g. ledger.sqlite)",
            path=path,
            line=line_of(lines, ("ledger",)),
            key="ledger",
        )
    output = absolute(model["output"], base, path, lines, ("output",))
    if is_(output.exists) and not is_(output.is_dir):
        raise ManifestError(
            f"{shorten(output)} is a file: name a folder to collect results into",
            path=path,
            line=line_of(lines, ("output",)),
            key="output",
        )
    warnings: list[str] = []
    entries = [
        _entry(model, index, base, path, lines, strict, warnings)
        for index in range(len(model["folders"]))
    ]
    _refuse_twice(entries, path)
    written = model["defaults"]
    defaults = Options(
        space=written["space"],
        space_line=lines.get(("defaults", "space"), 0),
        enhancements=_unique(written["enhancements"]),
        enhancements_line=lines.get(("defaults", "enhancements"), 0),
        recursive=written["recursive"],
        patterns=tuple(dict.fromkeys(written["patterns"])),
        tools=_tool_keys(written, ("defaults",), lines),
    )
    owned = assign(entries, defaults, base)
    listings = {e.line: model["folders"][e.index]["listing"] or "" for e in entries}
    upscales = {e.line: bool(model["folders"][e.index]["upscale"]) for e in entries}
    folders = tuple(
        FolderSpec(
            path=o.path,
            name=o.name,
            space=o.options.space,
            enhancements=o.options.enhancements,
            recursive=o.options.recursive,
            patterns=o.options.patterns,
            line=o.line,
            space_line=o.options.space_line or o.line,
            enhancements_line=o.options.enhancements_line or o.line,
            exclude=o.options.exclude,
            claimed=o.claimed,
            through=o.through,
            listing=listings.get(o.line, ""),
            upscale=upscales.get(o.line, False),
            **_tool_options(o.options.tools),
        )
        for o in owned
    )
    for folder in folders:
        _check_tool(folder, model["api"], path, lines)
        if folder.upscale and model["api"] != "v1":
            raise ManifestError(
                f"folder {folder.name!r}: upscale is an option of the v1 API only (v3 has no "
                "upscale call): remove it, or use 'api: v1' for this manifest",
                path=path,
                line=folder.line,
                key="upscale",
            )
    roots = photo_roots(entries, base, path, lines)
    conflict = output_conflict(output, roots)
    if conflict is not None:
        message, folder_line = conflict
        if ("output",) in lines:
            raise ManifestError(message, path=path, line=lines[("output",)], key="output")
        # The default output: the folder entry is what to change (or write an output: key).
        raise ManifestError(message, path=path, line=folder_line)
    return Manifest(
        path=path.resolve(),
        version=model["version"],
        ledger=ledger,
        output=output,
        concurrency=model["concurrency"],
        rate_limit=RateLimit(
            model["rate_limit"]["orders"], float(model["rate_limit"]["per_seconds"])
        ),
        retry=RetryPolicy(model["retry"]["attempts"], float(model["retry"]["max_backoff"])),
        api_key_env=model["api_key_env"],
        folders=folders,
        warnings=tuple(warnings),
        photo_roots=roots,
        account=model["account"],
        api=model["api"],
        delivery_profiles=_profiles(model, path, lines),
        quiet_period=_seconds(model["quiet_period"], 60.0, "quiet_period", path, lines),
        rescan=_seconds(model["rescan"], 600.0, "rescan", path, lines),
        matches=tuple(
            (e.path, e.line, tuple(relative(m, base) for m in e.matched)) for e in entries
        ),
    )


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([hms]?)", re.IGNORECASE)
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


def _seconds(
    value: str | float | None, default: float, key: str, path: Path, lines: LineMap
) -> float:
    """A duration key: a number of seconds, or text such as 90s, 10m, 1h30m; above 0."""
    if value is None:
        return default
    if isinstance(value, str):
        cleaned = value.strip().replace(" ", "")
        parts = _DURATION.findall(cleaned)
        if cleaned and "".join(n + u for n, u in parts).lower() == cleaned.lower():
            value = sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in parts)
    if isinstance(value, str) or not 0 < value <= 86400:
        raise ManifestError(
            "must be a duration above 0 and at most a day, e.g. 60s, 10m or 1h",
            path=path,
            line=line_of(lines, (key,)),
            key=key,
        )
    return float(value)


def _profiles(model: ManifestValues, path: Path, lines: LineMap) -> dict[str, DeliveryProfile]:
    """The manifest's delivery profiles, each made from the one it extends (a built-in, or
    another of the manifest's); one no photo could meet is an error at its line."""
    written = model["delivery_profiles"]
    made: dict[str, DeliveryProfile] = {}

    def make(name: str, chain: tuple[str, ...]) -> DeliveryProfile:
        if name in made:
            return made[name]
        entry = written[name]
        where: KeyPath = ("delivery_profiles", name)
        parent = entry["extends"] or name
        if entry["extends"] is None and name not in BUILT_IN:
            parent = MLS_DEFAULT.name
        if parent in chain:
            raise ManifestError(
                f"extends {' -> '.join([*chain, name, parent])}: profiles cannot extend each "
                "other in a circle; extend a built-in profile",
                path=path,
                line=line_of(lines, (*where, "extends")),
                key=dotted_key((*where, "extends")),
            )
        if parent in written and parent != name:
            base = make(parent, (*chain, name))
        elif parent in BUILT_IN:
            base = BUILT_IN[parent]
        else:
            mine = [n for n in written if n != name]
            raise ManifestError(
                f"extends {parent!r}: no such profile; valid: {', '.join(BUILT_IN)} (built in)"
                + (f" or {', '.join(mine)} (this manifest)" if mine else ""),
                path=path,
                line=line_of(lines, (*where, "extends")),
                key=dotted_key((*where, "extends")),
            )
        changes: dict[str, Any] = {
            key: value
            for key, value in entry.items()
            if value is not None and key not in ("extends", "max_megabytes")
        }
        if entry["max_megabytes"] is not None:
            changes["max_bytes"] = int(entry["max_megabytes"] * 1_000_000)
        profile = extend(base, name, changes)
        problem = profile_problem(profile)
        if entry["watermark_text"] is not None and profile.watermark == "forbidden":
            problem = (
                "watermark_text",
                (
                    f"the profile forbids a watermark (watermark: forbidden{_from(entry, base)}): "
                    "delete watermark_text, or set watermark: optional or required"
                ),
            )
        if problem is not None:
            key, message = problem
            # The key's own line when this profile wrote it; else the profile's line.
            here = (*where, key) if (*where, key) in lines else where
            line = line_of(lines, here)
            raise ManifestError(message, path=path, line=line, key=dotted_key(where))
        made[name] = profile
        return profile

    for name in written:
        make(name, ())
    return made


def _from(entry: ProfileValues, base: DeliveryProfile) -> str:
    return "" if entry["watermark"] is not None else f", from {base.name}"


def _refuse_twice(entries: list[Written], path: Path) -> None:
    """The same folder written twice is a slip; a pattern and a path may overlap on purpose."""
    seen: dict[Path, int] = {}
    for entry in entries:
        if entry.pattern or not entry.matched:
            continue
        folder = entry.matched[0]
        if folder in seen:
            raise ManifestError(
                f"the folder {shorten(folder)} is listed twice (lines {seen[folder]} and "
                f"{entry.line}): list each folder once",
                path=path,
                line=entry.line,
                key=f"folders[{entry.index}].path",
            )
        seen[folder] = entry.line


def refuse_output_over_photos(output: Path, manifest: Manifest, *, where: str) -> None:
    """``collect --output DIR`` obeys the same rule as the manifest's ``output:``."""
    conflict = output_conflict(output, manifest.photo_roots)
    if conflict is not None:
        raise UsageError(f"{where} {shorten(output)}: {conflict[0]}")


def _entry(
    model: ManifestValues,
    index: int,
    base: Path,
    path: Path,
    lines: LineMap,
    strict: bool,
    warnings: list[str],
) -> Written:
    """One folder entry as written, with the folders it matches now."""
    entry = model["folders"][index]
    where: KeyPath = ("folders", index)
    path_line = line_of(lines, (*where, "path"))
    key = f"folders[{index}].path"
    written = Written(
        index=index,
        line=lines[where],
        path=entry["path"],
        pattern=is_pattern(entry["path"]),
        space=entry["space"],
        space_line=lines.get((*where, "space"), 0),
        enhancements=None if (names := entry["enhancements"]) is None else _unique(names),
        enhancements_line=lines.get((*where, "enhancements"), 0),
        recursive=entry["recursive"],
        patterns=None if (globs := entry["patterns"]) is None else tuple(dict.fromkeys(globs)),
        exclude=None if (skipped := entry["exclude"]) is None else tuple(dict.fromkeys(skipped)),
        tools=_tool_keys(entry, where, lines),
    )
    if written.pattern:
        literal, parts = split_pattern(entry["path"])
        root = absolute(literal, base, path, lines, (*where, "path"))
        written.matched = [resolve_match(m, path, path_line, key) for m in expand(root, parts)]
        if not written.matched:
            _missing(f"the pattern {written.path!r} matches no folder", path, path_line, key,
                     strict, warnings)  # fmt: skip
        return written
    resolved, status = resolve(entry["path"], base, path, lines, (*where, "path"))
    if status is None:  # gone: a loop or a name too long was refused already
        _missing(
            f"folder not found: {shorten(resolved)} (relative paths start at {shorten(base)})",
            path, path_line, key, strict, warnings,
        )  # fmt: skip
        return written
    if not stat.S_ISDIR(status.st_mode):
        raise ManifestError(
            f"{shorten(resolved)} is a file, not a folder: give the folder that holds the photos",
            path=path,
            line=path_line,
            key=key,
        )
    written.matched = [resolved]
    return written


_TOOL_KEYS = ("tool", *CHOICE_KEYS, "project")


def _tool_keys(
    entry: FolderValues | DefaultsValues, where: KeyPath, lines: LineMap
) -> tuple[tuple[str, str, int], ...]:
    """The v3 tool keys an entry (or ``defaults``) wrote, with their lines."""
    values: Mapping[str, object] = entry
    return tuple(
        (key, value, lines.get((*where, key), 0))
        for key in _TOOL_KEYS
        if isinstance(value := values.get(key), str)
    )


def _tool_options(tools: tuple[tuple[str, str, int], ...]) -> dict[str, Any]:
    written = {key: value for key, value, _ in tools}
    return {
        "tool": written.get("tool", DEFAULT_TOOL),
        "choices": tuple((key, written[key]) for key in CHOICE_KEYS if key in written),
        "project": written.get("project", ""),
        "option_lines": tuple((key, line) for key, _, line in tools if line),
    }


def _check_tool(folder: FolderSpec, version: str, path: Path, lines: LineMap) -> None:
    """A folder's tool and its options, checked before anything is spent (pure: no API)."""
    written = dict(folder.option_lines)
    if version != "v3":
        v3_only = [k for k in _TOOL_KEYS if k in written and k != "tool"]
        if tool_name(folder.tool) != DEFAULT_TOOL or v3_only:
            key = "tool" if tool_name(folder.tool) != DEFAULT_TOOL else v3_only[0]
            raise ManifestError(
                f"folder {folder.name!r}: {key}: {folder.tool if key == 'tool' else ''} is an "
                "option of the v3 API only: add 'api: v3' at the top of the manifest (or set "
                f"{API_VERSION_ENV}=v3); v1 orders image enhancement only",
                path=path,
                line=folder.line_of(key),
                key=key,
            )
        return
    try:
        build_spec(
            folder.tool,
            space=folder.space,
            enhancements=folder.enhancements,
            **dict(folder.choices),
        )
    except ToolOptionError as exc:
        line = {"space": folder.space_line, "enhancements": folder.enhancements_line}.get(
            exc.key, folder.line_of(exc.key)
        )
        raise ManifestError(
            f"folder {folder.name!r}: {exc}", path=path, line=line, key=exc.key
        ) from None


def _missing(
    message: str, path: Path, line: int, key: str, strict: bool, warnings: list[str]
) -> None:
    """A folder gone (a listing archived) skips that folder only, unless --strict."""
    if strict:
        raise ManifestError(
            f"{message}: fix the path or create the folder (--strict refuses a missing folder)",
            path=path,
            line=line,
            key=key,
        )
    warnings.append(f"{path}:{line}: {key}: {message}: skipped")


def _unique(names: list[str]) -> tuple[str, ...]:
    """Drop repeats (any case), keeping the first spelling and the order."""
    kept: dict[str, str] = {}
    for name in names:
        kept.setdefault(name.casefold(), name)
    return tuple(kept.values())
