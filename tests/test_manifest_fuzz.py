"""Any bytes given as a manifest load, or end in a ManifestError naming the file and line."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import ManifestError
from pipeline.manifest.loader import load_manifest

# Pieces of manifests and of YAML that has gone wrong: keys, flow and block syntax, anchors,
# tags, directives, control and odd Unicode characters, values PyYAML resolves oddly.
_PIECES = [
    "version: 1\n",
    "folders:\n",
    "  - path: inside\n",
    "    space: indoor\n",
    "defaults:\n",
    "rate_limit: {orders: 10, per_seconds: ",
    "retry: {attempts: ",
    "concurrency: ",
    "enhancements: [",
    "recursive: ",
    "patterns: ",
    "api_key: ",
    "- ",
    "  ",
    "\n",
    ": ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "'",
    '"',
    "? ",
    "|\n",
    ">-\n",
    "# note",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2002:\n",
    "&anchor ",
    "*anchor",
    "<<: ",
    "!!python/object:os.system ",
    "!!binary ",
    "\t",
    "\x00",
    "\x07",
    "\x1b",
    "\x7f",
    "\x85",
    "\u2028",
    "\ufeff",
    "\ud7ff",
    "1.0e308",
    "1e999",
    "-.inf",
    ".nan",
    "0x1F",
    "0o17",
    "1_000",
    "190:20:30",
    "2026-13-45",
    "2026-02-30 25:61:61",
    "9" * 5000,
    "~",
    "null",
    "yes",
    "=",
]

_yaml_like = st.lists(st.sampled_from(_PIECES) | st.text(max_size=8), max_size=40).map(
    lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
)
_deep = st.integers(min_value=1, max_value=3_000).map(lambda n: b"folders: " + b"[" * n)


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(raw=st.binary(max_size=600) | _yaml_like | _deep)
def test_any_bytes_load_or_end_in_a_manifest_error_with_file_and_line(raw: bytes) -> None:
    """Random bytes and YAML-like text: a Manifest, or exit 2 with file:line; nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "inside").mkdir()
        path = root / "photos.yaml"
        path.write_bytes(raw)
        try:
            load_manifest(path)
        except ManifestError as exc:
            assert exc.exit_code == 2
            assert exc.path == path and exc.line is not None, str(exc)
            assert str(exc).startswith(f"{path}:{exc.line}: ")
            assert "\n" not in str(exc)  # one line
