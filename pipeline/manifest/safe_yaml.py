"""Strict, safe YAML for manifests: plain data only, with the line of every key and item."""

from __future__ import annotations

__all__ = ["MAX_DEPTH", "MAX_MANIFEST_BYTES", "KeyPath", "LineMap", "dotted_key", "load_yaml"]

import os
import re
import stat
from pathlib import Path
from typing import Any, TypeAlias

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pipeline.errors import ManifestError

MAX_MANIFEST_BYTES = 1024 * 1024
MAX_DEPTH = 32  # a manifest needs 4 levels (folders, an entry, enhancements, an item)

KeyPath: TypeAlias = tuple[str | int, ...]
LineMap: TypeAlias = dict[KeyPath, int]

# Scalars the safe constructor may build; anything else (e.g. "=" resolving to the value tag)
# stays the text it was written as.
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")
)
# YAML 1.1 (PyYAML) reads 1.0e308 and 1e3 as text: an exponent needs a dot and a sign there.
# YAML 1.2 reads them as the numbers they look like, and so does a manifest.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$")


_STR_TAG = "tag:yaml.org,2002:str"


class _Refused(Exception):
    """A YAML feature a manifest may not use; carries the 1-based line."""

    def __init__(self, message: str, line: int) -> None:
        self.message = message
        self.line = line
        super().__init__(message)


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses tags, anchors and aliases before anything is built."""

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # Checked on the event, before the composer would follow an alias: no alias bombs.
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        if self.check_event(AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(
                "anchors and aliases are not allowed in a manifest: write the value out in full",
                line,
            )
        if isinstance(event, ScalarEvent | MappingStartEvent | SequenceStartEvent) and event.tag:
            raise _Refused(
                f"YAML tags such as {event.tag!r} are not allowed in a manifest: "
                "remove the tag and write plain values",
                line,
            )
        if isinstance(event, MappingStartEvent | SequenceStartEvent):
            self._depth = getattr(self, "_depth", 0) + 1
            if self._depth > MAX_DEPTH:
                # Checked as it is composed: PyYAML's composer recurses, and its scanner slows
                # with every open bracket, so 1 MB of "[" would take hours, then overflow.
                raise _Refused(
                    f"lists and mappings nested over {MAX_DEPTH} deep: a manifest is a few "
                    "levels deep; check its brackets and indentation",
                    line,
                )
            try:
                node: Node | None = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            return node
        node = super().compose_node(parent, index)
        return node


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+.0123456789")
)


def load_yaml(path: Path) -> tuple[object, LineMap]:
    """Read a manifest's YAML into plain data and a map from key path to 1-based line."""
    text = _read_text(path)
    if _FastLoader is not None and _DIFFERENT_IN_LIBYAML.isdisjoint(text):
        try:
            return _load_fast(text, path)
        except (yaml.YAMLError, _Refused, RecursionError, ValueError, OverflowError):
            pass  # the careful loader below refuses it in its own words, at its line
        except ManifestError:
            pass  # likewise: a value the builder refused is refused again, the same way
    try:
        loader = _StrictLoader(text)
    except yaml.reader.ReaderError as exc:
        raise _unreadable_character(exc, text, path) from None
    try:
        try:
            root = loader.get_single_node()
        except yaml.reader.ReaderError as exc:
            raise _unreadable_character(exc, text, path) from None
        except RecursionError:
            raise _too_deep(path) from None
        except _Refused as exc:
            raise ManifestError(exc.message, path=path, line=exc.line) from None
        except yaml.MarkedYAMLError as exc:
            # Not chained: PyYAML's text quotes the offending line, which may hold a secret.
            raise ManifestError(_syntax_message(exc), path=path, line=_line_of(exc)) from None
        except yaml.YAMLError as exc:
            raise ManifestError(f"YAML syntax error: {exc}", path=path, line=1) from exc
        if root is None:
            raise ManifestError(
                "the manifest is empty: start it with 'version: 1' and a 'folders:' list",
                path=path,
                line=1,
            )
        lines: LineMap = {(): root.start_mark.line + 1}
        try:
            return _Builder(loader, path, lines).build(root, ()), lines
        except RecursionError:
            raise _too_deep(path) from None
    finally:
        loader.dispose()


def _too_deep(path: Path) -> ManifestError:
    return ManifestError(
        "the manifest nests lists or mappings too deeply: a manifest is a few levels deep; "
        "check its brackets",
        path=path,
        line=1,
    )


def _unreadable_character(exc: yaml.reader.ReaderError, text: str, path: Path) -> ManifestError:
    """A control character (NUL, BEL, ...) PyYAML will not read, named with its line."""
    line = text[: exc.position].count("\n") + 1 if isinstance(exc.position, int) else 1
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return ManifestError(
        f"a control character (U+{code:04X}) is not allowed in a manifest: delete it "
        "(a manifest is plain text)",
        path=path,
        line=line,
    )


# libyaml's parser, where PyYAML has it: a manifest of 10,000 folders parses in a fraction of
# the pure-Python parser's time. Its events are checked for anchors, aliases and tags before
# anything is composed, so it builds nothing the strict loader would refuse.
_FastLoader: type[Any] | None = None
if hasattr(yaml, "CSafeLoader"):

    class _CFast(yaml.CSafeLoader):
        """libyaml's parser, with the manifest's YAML 1.2 exponent floats."""

    _CFast.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+.0123456789"))
    _FastLoader = _CFast
# Where libyaml and PyYAML disagree (tabs in values, unusual line breaks, block scalar headers,
# "?" keys), only the strict loader reads the text: either way, one result.
_DIFFERENT_IN_LIBYAML = frozenset("\t\r\x85\u2028\u2029\ufeff|>?")


def _load_fast(text: str, path: Path) -> tuple[object, LineMap]:
    assert _FastLoader is not None
    checker = _FastLoader(text)
    depth = 0
    try:
        # Every event is looked at before anything is composed: anchors, aliases and tags are
        # refused, and so is nesting deeper than a manifest needs (MAX_DEPTH).
        while checker.check_event():
            event = checker.get_event()
            if (
                isinstance(event, AliasEvent)
                or getattr(event, "anchor", None) is not None
                or getattr(event, "tag", None)
            ):
                raise _Refused("an anchor, alias or tag", 0)
            if isinstance(event, MappingStartEvent | SequenceStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _Refused("too deep", 0)
            elif isinstance(event, MappingEndEvent | SequenceEndEvent):
                depth -= 1
    finally:
        checker.dispose()
    loader = _FastLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise _Refused("empty", 1)
        lines: LineMap = {(): root.start_mark.line + 1}
        return _Builder(loader, path, lines).build(root, ()), lines
    finally:
        loader.dispose()


def _read_text(path: Path) -> str:
    """Read at most the size limit, as UTF-8 text, from a regular file only.

    Opened without blocking and checked before any read: a FIFO (or a terminal, a device)
    given as the manifest would otherwise hang the command waiting for a writer.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ManifestError(
            f"cannot read the manifest ({reason}): check the path", path=path
        ) from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a pipe, device or socket"
        raise ManifestError(
            f"cannot read the manifest (it is {kind}, not a file): give the path of a YAML file",
            path=path,
        )
    with os.fdopen(fd, "rb") as handle:
        try:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ManifestError(
                f"cannot read the manifest ({reason}): check the path", path=path
            ) from exc
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            "the manifest is over 1 MB: a manifest lists folders, not photos; split it up",
            path=path,
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ManifestError(
            "the manifest is not UTF-8 text: save it as UTF-8", path=path, line=line
        ) from exc


def _line_of(exc: yaml.MarkedYAMLError) -> int | None:
    mark = exc.problem_mark or exc.context_mark
    return None if mark is None else mark.line + 1


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or "unreadable YAML"
    if "'\\t'" in problem:
        return "YAML syntax error: a tab character; indent with spaces, not tabs"
    message = f"YAML syntax error: {problem}"
    if exc.context:
        where = f" (line {exc.context_mark.line + 1})" if exc.context_mark is not None else ""
        message += f", {exc.context}{where}"
    return message + "; check the indentation, quotes and brackets around this line"


class _Builder:
    """Turns composed nodes into dicts, lists and scalars, recording lines on the way."""

    def __init__(self, loader: Any, path: Path, lines: LineMap) -> None:
        self._loader = loader
        self._path = path
        self._lines = lines

    def build(self, node: Node, where: KeyPath) -> Any:
        if isinstance(node, MappingNode):
            return self._mapping(node, where)
        if isinstance(node, SequenceNode):
            items: list[Any] = []
            for index, item in enumerate(node.value):
                self._lines[(*where, index)] = item.start_mark.line + 1
                items.append(self.build(item, (*where, index)))
            return items
        assert isinstance(node, ScalarNode)
        if node.tag == _STR_TAG:
            return node.value  # what the constructor would return, without its bookkeeping
        if node.tag in _PLAIN_TAGS:
            try:
                return self._loader.construct_object(node)
            except (ValueError, OverflowError):
                # e.g. 2026-13-45 (a date with no such month), or an int of 5,000 digits.
                kind = node.tag.rsplit(":", 1)[-1]
                raise ManifestError(
                    f"this value looks like a {kind} but is not a valid one: "
                    "put it in quotes if it is text, or correct it",
                    path=self._path,
                    line=node.start_mark.line + 1,
                    key=dotted_key(where),
                ) from None
        return node.value

    def _mapping(self, node: MappingNode, where: KeyPath) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                raise ManifestError(
                    "a key must be a plain name, not a list or mapping", path=self._path, line=line
                )
            key = str(key_node.value)
            if key in mapping:
                first = self._lines[(*where, key)]
                raise ManifestError(
                    f"duplicate key {key!r} (first on line {first}, again on line {line}): "
                    "keep only one",
                    path=self._path,
                    line=line,
                    key=dotted_key((*where, key)),
                )
            self._lines[(*where, key)] = line
            mapping[key] = self.build(value_node, (*where, key))
        return mapping


def dotted_key(where: KeyPath) -> str:
    """Write a key path the way a user reads it: folders[1].space."""
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
