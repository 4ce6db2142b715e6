"""The fields of a small multipart/form-data upload, split from memory.

aiohttp's streaming multipart reader parses every part's Content-Disposition with a general
RFC 6266 parser (regular expressions, ``re.escape`` per parameter): in the open-pipe benchmark
that was ~45% of the emulator's CPU per upload. A small upload is read whole anyway and the
emulator needs two fields by name, so it is split here. A body this does not understand (no
boundary, RFC 2231 ``name*=``, a part without a name) gives None, and the caller answers as the
API does for a form without the file; large uploads always go through aiohttp's reader.
"""

from __future__ import annotations

__all__ = ["split_form"]

import re

_BOUNDARY = re.compile(r';\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_DISPOSITION = re.compile(rb"^content-disposition\s*:(.*)$", re.IGNORECASE | re.MULTILINE)
_NAME = re.compile(rb'(?:^|;)\s*name\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)


def split_form(body: bytes, content_type: str) -> dict[str, bytes] | None:
    """Field name -> value (the first of each name), or None if the body is not understood."""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    found = _BOUNDARY.search(content_type)
    if found is None:
        return None
    delimiter = b"\r\n--" + (found.group(1) or found.group(2)).encode("latin-1")
    framed = b"\r\n" + body  # the first delimiter has no CRLF before it
    start = framed.find(delimiter)
    end = framed.find(delimiter + b"--", start)
    if start < 0 or end < 0:
        return None
    fields: dict[str, bytes] = {}
    for part in framed[start + len(delimiter) : end].split(delimiter):
        head, blank, value = part.partition(b"\r\n\r\n")
        if not blank or not head.startswith(b"\r\n"):
            return None
        name = _field_name(head)
        if name is None:
            return None
        fields.setdefault(name, value)
    return fields


def _field_name(head: bytes) -> str | None:
    disposition = _DISPOSITION.search(head)
    if disposition is None or not disposition.group(1).strip().lower().startswith(b"form-data"):
        return None
    name = _NAME.search(disposition.group(1).strip()[len(b"form-data") :])
    if name is None:
        return None
    return (name.group(1) if name.group(1) is not None else name.group(2)).decode("utf-8")
