"""File names as the disk holds them: any bytes, kept losslessly, shown escaped.

On Linux a file name is bytes, UTF-8 or not (``caf\\xe9.jpg`` from an old camera or a Windows
share). Python hands such a name over as text with each byte that is not UTF-8 as a lone
surrogate, U+DC80 to U+DCFF (PEP 383, "surrogateescape"), and every ``os`` function takes that
text back unchanged: inside aihd a path is that text, always. What cannot take it is anything
that writes UTF-8: SQLite's driver, PostgreSQL's, a terminal, a log file, a CSV, a web page.
So, at those edges:

- ``stored`` / ``unstored``: the ledger's form, in both stores. Valid text is stored as itself,
  so nothing a ledger already holds changes or needs migrating. A lone surrogate, and the
  character U+FFFF itself, are stored as U+FFFF and four hex digits of the code point: U+FFFF
  is a Unicode noncharacter (reserved for uses like this one, never typed into a name) and
  valid UTF-8 for both drivers. The form is made character by character, so a folder's stored
  form is a prefix of its photos' (the ledger scopes commands by folder prefix).
- ``shown``: the form for people and for names aihd writes (output, logs, status, export, the
  review page, collect's result names): each byte that is not UTF-8 as ``\\xNN``, as Python
  writes bytes. Not reversible, and never used to find a file.
- ``shell_quoted``: a word for a hint's command that works when pasted: ``shlex.quote`` for
  valid text, a bash/zsh ``$'...'`` word with ``\\xNN`` for a name that is not UTF-8.
- ``SHOWN_ERRORS``: the same escaping as an encoding error handler, for the CLI's streams: a
  name printed by a line that did not pass it through ``shown`` reads the same, never fails.
"""

from __future__ import annotations

__all__ = ["SHOWN_ERRORS", "shell_join", "shell_quoted", "shown", "stored", "unstored"]

import codecs
import re
import shlex

_STORE_MARK = "\uffff"
# Lone surrogates (from names that are not UTF-8), and the mark itself.
_TO_STORE = re.compile("[\ud800-\udfff\uffff]")
_FROM_STORE = re.compile("\uffff([0-9a-f]{4})")


def stored(text: str) -> str:
    """``text`` as the ledger stores it: itself when valid UTF-8 without U+FFFF."""
    if text.isascii() or _TO_STORE.search(text) is None:
        return text
    return _TO_STORE.sub(lambda found: f"{_STORE_MARK}{ord(found.group()):04x}", text)


def unstored(text: str) -> str:
    """The text ``stored`` was given (the file's own name, for the ``os`` functions)."""
    if _STORE_MARK not in text:
        return text
    return _FROM_STORE.sub(lambda found: chr(int(found.group(1), 16)), text)


def shown(text: str) -> str:
    """``text`` with each byte of the name that is not UTF-8 written ``\\xNN``: printable,
    writable as UTF-8 anywhere."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate no file name produced: written as \udXXX
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")
    return text


def shell_quoted(text: str) -> str:
    """``text`` as one word of a shell command, the name's own bytes when it is pasted."""
    if text.isascii() or shown(text) == text:
        return shlex.quote(text)
    raw = text.encode("utf-8", "surrogateescape")
    out = []
    for char in raw.decode("utf-8", "surrogateescape"):
        if char in "\\'":
            out.append("\\" + char)
        elif "\udc80" <= char <= "\udcff":
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif char.isprintable():
            out.append(char)
        else:
            out.append("".join(f"\\x{b:02x}" for b in char.encode("utf-8")))
    return "$'" + "".join(out) + "'"


def shell_join(words: list[str]) -> str:
    """A command of these words that works when pasted, whatever bytes a name holds."""
    return " ".join(shell_quoted(word) for word in words)


SHOWN_ERRORS = "aihd-shown"


def _shown_errors(error: UnicodeError) -> tuple[str, int]:
    """What ``shown`` writes, for the characters an encoder could not take."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    out = []
    for char in error.object[error.start : error.end]:
        if "\udc80" <= char <= "\udcff":  # a byte of a name that is not UTF-8
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        else:
            out.append(char.encode("ascii", "backslashreplace").decode("ascii"))
    return "".join(out), error.end


codecs.register_error(SHOWN_ERRORS, _shown_errors)
