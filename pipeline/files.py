"""Opening a photo from the user's folders: a regular file only, and never a wait.

A FIFO named like a photo, or swapped in for one between the scan and the upload, would block
``open()`` until some process wrote to it: a run would hang, and its SIGTERM handler with it.
So a photo is opened with ``O_NONBLOCK`` (which changes nothing for reads of a regular file),
checked with ``fstat`` on the descriptor just opened (what was opened, not what the path named a
moment before), and refused unless it is a regular file: FIFOs, devices and sockets are
``NotRegularFile``, an ``OSError`` whose ``strerror`` says what the path is.
"""

from __future__ import annotations

__all__ = ["kind_of", "not_regular", "open_regular"]

import errno
import os
import stat
from typing import BinaryIO

from pipeline.errors import NotRegularFile

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


def kind_of(mode: int) -> str | None:
    """What a file of this ``st_mode`` is, in words, unless it is a regular file (None)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a file"


def not_regular(path: str | os.PathLike[str], kind: str) -> NotRegularFile:
    return NotRegularFile(
        errno.EINVAL, f"it is {kind}, not a regular file; only photo files are read", path
    )


def open_regular(path: str | os.PathLike[str], *, buffered: bool = True) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file; else NotRegularFile.

    ``buffered=False`` for a caller that reads in big chunks to the end (the scan's hash, an
    upload): the file itself, without a buffer whose set-up asks the system whether it is a
    terminal and where it stands (two calls a photo, for nothing)."""
    fd = os.open(path, _FLAGS)
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise not_regular(path, kind)
        return os.fdopen(fd, "rb", buffering=-1 if buffered else 0)
    except BaseException:
        os.close(fd)
        raise
