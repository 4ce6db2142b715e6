"""The manifest: strict, safe loading of a run's YAML into frozen records.

Every problem is a ``ManifestError`` naming the file, line and key, and saying how to fix it.
Space and enhancement names are not checked here: the catalog resolves them against the live API.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from pipeline._manifest_schema import (
    DEFAULT_PATTERNS,
    DefaultsModel,
    FolderModel,
    ManifestModel,
    RateLimitModel,
    RetryModel,
    explain,
)
from pipeline._yaml import KeyPath, LineMap, dotted_key, load_yaml
from pipeline.errors import ManifestError
from pipeline.ledger.stores import is_url

__all__ = [
    "DEFAULT_PATTERNS",
    "FolderSpec",
    "Manifest",
    "RateLimit",
    "RetryPolicy",
    "load_manifest",
    "manifest_json_schema",
]

# Key names that would hold the API key itself; compared after lower-casing and "-" -> "_".
_API_KEY_NAMES = frozenset({"api_key", "apikey", "key", "x_api_key", "api_token", "token"})

# Which model checks the keys of each nested mapping (lists of folders are handled apart).
_NESTED: dict[type[BaseModel], dict[str, type[BaseModel]]] = {
    ManifestModel: {"rate_limit": RateLimitModel, "retry": RetryModel, "defaults": DefaultsModel},
}


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
    account: str = "default"

    @property
    def legacy_ledger(self) -> Path:
        """Where aihd before the account ledger kept this manifest's ledger (imported once)."""
        return self.path.with_name(f"{self.path.stem}.ledger.sqlite")


def load_manifest(path: Path) -> Manifest:
    """Load and check a manifest; raise ManifestError naming the file, line and key."""
    raw, lines = load_yaml(path)
    if not isinstance(raw, dict):
        kind = "a list" if isinstance(raw, list) else "a single value"
        raise ManifestError(
            f"the top level must be a mapping of keys (version, folders, ...), not {kind}",
            path=path,
            line=lines[()],
        )
    _refuse_api_keys(raw, (), lines, path)
    _check_keys(raw, ManifestModel, (), lines, path)
    try:
        model = ManifestModel.model_validate(raw)
    except ValidationError as exc:
        # Not chained: pydantic's own text repeats the values, and one of them may be a secret.
        raise _first_error(exc, lines, path) from None
    return _build(model, path, lines)


def manifest_json_schema() -> dict[str, object]:
    """The JSON Schema of the manifest's YAML, for editors and `aihd schema`."""
    schema: dict[str, object] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    schema.update(ManifestModel.model_json_schema())
    return schema


def _line(lines: LineMap, where: KeyPath) -> int:
    """The line of a key path, or of its closest written parent (for a missing key)."""
    while where not in lines:
        where = where[:-1]
    return lines[where]


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
    value: object, model: type[BaseModel], where: KeyPath, lines: LineMap, path: Path
) -> None:
    """Refuse unknown keys (with a suggestion) and keys written without a value."""
    if not isinstance(value, dict):
        return  # the wrong type is reported by validation, with its own message
    allowed = list(model.model_fields)
    for key, item in value.items():
        here = (*where, key)
        if key not in model.model_fields:
            close = difflib.get_close_matches(key, allowed, n=1)
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
        if model is ManifestModel and key == "folders" and isinstance(item, list):
            for index, folder in enumerate(item):
                _check_keys(folder, FolderModel, (*here, index), lines, path)
        elif key in _NESTED.get(model, {}):
            _check_keys(item, _NESTED[model][key], here, lines, path)


def _first_error(exc: ValidationError, lines: LineMap, path: Path) -> ManifestError:
    """Translate the earliest (by line) validation error into a ManifestError."""
    errors = exc.errors(include_url=False, include_input=True)
    located = sorted(
        ((_line(lines, tuple(error["loc"])), n, error) for n, error in enumerate(errors)),
        key=lambda entry: (entry[0], entry[1]),
    )
    line, _, error = located[0]
    where = tuple(error["loc"])
    message = explain(error)
    if len(errors) > 1:
        others = len(errors) - 1
        message += f" (and {others} more problem{'s' if others > 1 else ''} after it)"
    return ManifestError(message, path=path, line=line, key=dotted_key(where))


def _build(model: ManifestModel, path: Path, lines: LineMap) -> Manifest:
    """Turn a validated model into records with absolute paths, checking them on disk."""
    base = path.resolve().parent
    ledger: Path | str | None = None
    if model.ledger is not None:
        ledger = model.ledger if is_url(model.ledger) else _absolute(model.ledger, base)
    if isinstance(ledger, Path) and ledger.is_dir():
        raise ManifestError(
            f"{ledger} is a folder: name a file for the ledger (e.g. ledger.sqlite)",
            path=path,
            line=_line(lines, ("ledger",)),
            key="ledger",
        )
    output = _absolute(model.output, base)
    if output.exists() and not output.is_dir():
        raise ManifestError(
            f"{output} is a file: name a folder to collect results into",
            path=path,
            line=_line(lines, ("output",)),
            key="output",
        )
    folders = tuple(_folder(model, index, base, path, lines) for index in range(len(model.folders)))
    seen: dict[Path, int] = {}
    for index, folder in enumerate(folders):
        if folder.path in seen:
            raise ManifestError(
                f"the folder {folder.path} is listed twice (lines {seen[folder.path]} and "
                f"{folder.line}): list each folder once",
                path=path,
                line=folder.line,
                key=f"folders[{index}].path",
            )
        seen[folder.path] = folder.line
    _refuse_nested(folders, path)
    return Manifest(
        path=path.resolve(),
        version=model.version,
        ledger=ledger,
        output=output,
        concurrency=model.concurrency,
        rate_limit=RateLimit(model.rate_limit.orders, float(model.rate_limit.per_seconds)),
        retry=RetryPolicy(model.retry.attempts, float(model.retry.max_backoff)),
        api_key_env=model.api_key_env,
        folders=folders,
        account=model.account,
    )


def _refuse_nested(folders: tuple[FolderSpec, ...], path: Path) -> None:
    """A folder inside a recursive one would be scanned twice, each time with its own options."""
    for index, folder in enumerate(folders):
        for outer in folders:
            if outer.recursive and outer.path in folder.path.parents:
                raise ManifestError(
                    f"the folder {folder.path} (line {folder.line}) is inside {outer.path} "
                    f"(line {outer.line}), which is recursive: its photos would be found twice, "
                    "with two sets of options, and each set would be paid for. Drop one of the "
                    f"two entries, or set recursive: false on {outer.path}",
                    path=path,
                    line=folder.line,
                    key=f"folders[{index}].path",
                )


def _folder(model: ManifestModel, index: int, base: Path, path: Path, lines: LineMap) -> FolderSpec:
    """One folder entry with the defaults applied; its folder must exist."""
    entry, defaults = model.folders[index], model.defaults
    where: KeyPath = ("folders", index)
    line = lines[where]
    resolved = _absolute(entry.path, base)
    if not resolved.exists():
        raise ManifestError(
            f"folder not found: {resolved} (relative paths start at {base}): fix the path or "
            "create the folder",
            path=path,
            line=_line(lines, (*where, "path")),
            key=f"folders[{index}].path",
        )
    if not resolved.is_dir():
        raise ManifestError(
            f"{resolved} is a file, not a folder: give the folder that holds the photos",
            path=path,
            line=_line(lines, (*where, "path")),
            key=f"folders[{index}].path",
        )
    enhancements = entry.enhancements if entry.enhancements is not None else defaults.enhancements
    patterns = entry.patterns if entry.patterns is not None else defaults.patterns
    return FolderSpec(
        path=resolved,
        name=entry.path.rstrip("/\\") or entry.path,
        space=entry.space if entry.space is not None else defaults.space,
        enhancements=_unique(enhancements),
        recursive=entry.recursive if entry.recursive is not None else defaults.recursive,
        patterns=tuple(dict.fromkeys(patterns)),
        line=line,
        space_line=_written_line(lines, where, "space", line),
        enhancements_line=_written_line(lines, where, "enhancements", line),
    )


def _written_line(lines: LineMap, where: KeyPath, key: str, fallback: int) -> int:
    """Where a folder's value was written: on the folder, else under defaults, else the folder."""
    return lines.get((*where, key)) or lines.get(("defaults", key)) or fallback


def _unique(names: list[str]) -> tuple[str, ...]:
    """Drop repeats (any case), keeping the first spelling and the order."""
    kept: dict[str, str] = {}
    for name in names:
        kept.setdefault(name.casefold(), name)
    return tuple(kept.values())


def _absolute(written: str, base: Path) -> Path:
    """A path as written in the manifest, made absolute against the manifest's folder."""
    return (base / Path(written).expanduser()).resolve()
