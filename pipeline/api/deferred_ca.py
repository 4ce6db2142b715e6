"""aiohttp, imported without loading the system's CA certificates until a TLS connection needs them.

aiohttp's connector module makes two TLS contexts as it is imported, one that verifies and one
that does not, and each loads every CA certificate of the system: 0.5 G instructions, a quarter
of `aihd run`'s start-up (bench/RESULTS.md), spent even by a run that never opens a TLS
connection (the sandbox, an http:// API on a LAN). Imported from here, aiohttp gets:

- its verifying context from ``ssl.create_default_context`` as ever (same protocol, flags and
  checks), except that the default certificates are loaded when it first wraps a connection
  (``wrap_bio``, which asyncio's and uvloop's TLS both call, or ``wrap_socket``), not before.
  Until then it trusts no CA: were the load ever skipped, every TLS connection would be refused
  (fail closed), none accepted unverified;
- its context that does not verify (``CERT_NONE``) without them at all: it never consults them.

Only aiohttp's import runs with the two ``ssl.SSLContext`` methods replaced, and they are put
back after it; every context made later is the standard library's own. transport.py imports
aiohttp from here, when it first needs it (a result's download): `aihd run`, which downloads
nothing, never loads aiohttp (its API calls go through http1.py).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from socket import socket
from typing import Any

__all__ = ["aiohttp"]

_LOADING = threading.Lock()


class _DeferredCA(ssl.SSLContext):
    """A verifying client context that loads the default CA certificates on first use."""

    _load_pending: Callable[[], None] | None = None

    def _load(self) -> None:
        if self._load_pending is not None:
            with _LOADING:
                load, self._load_pending = self._load_pending, None
                if load is not None:
                    load()

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load()
        return super().wrap_bio(*args, **kwargs)

    def wrap_socket(self, sock: socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load()
        return super().wrap_socket(sock, *args, **kwargs)

    def get_ca_certs(self, binary_form: bool = False) -> Any:
        self._load()
        return super().get_ca_certs(binary_form)

    def cert_store_stats(self) -> dict[str, int]:
        self._load()
        return super().cert_store_stats()


@contextmanager
def _certificates_loaded_on_first_use() -> Iterator[None]:
    load_default_certs = ssl.SSLContext.load_default_certs
    set_default_verify_paths = ssl.SSLContext.set_default_verify_paths

    def load_later(self: ssl.SSLContext, purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH) -> None:
        self.__class__ = _DeferredCA
        self._load_pending = lambda: load_default_certs(self, purpose)  # type: ignore[attr-defined]

    def paths_unless_unverified(self: ssl.SSLContext) -> None:
        if self.verify_mode != ssl.CERT_NONE:
            set_default_verify_paths(self)

    ssl.SSLContext.load_default_certs = load_later  # type: ignore[method-assign]
    ssl.SSLContext.set_default_verify_paths = paths_unless_unverified  # type: ignore[method-assign]
    try:
        yield
    finally:
        ssl.SSLContext.load_default_certs = load_default_certs  # type: ignore[method-assign]
        ssl.SSLContext.set_default_verify_paths = set_default_verify_paths  # type: ignore[method-assign]


with _certificates_loaded_on_first_use():
    import aiohttp as _aiohttp  # the import this module exists for

aiohttp = _aiohttp  # what this module exports (a name defined at its top level, as __all__ wants)
