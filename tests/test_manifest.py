"""The manifest loads strictly and safely; every bad one names its file, line and problem."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pipeline.errors import ManifestError
from pipeline.manifest.loader import (
    FolderSpec,
    RateLimit,
    RetryPolicy,
    load_manifest,
    manifest_json_schema,
)

CANARY_KEY = "sk-canary-do-not-echo-4f1d"

# (id, YAML text, line the error must name, phrase the error must contain). The texts refer to
# folders "inside" and "outside" beside the manifest; the CLI tests reuse this list.
BAD_MANIFESTS: list[tuple[str, str, int, str]] = [
    ("yaml-syntax", "version: 1\nfolders: [inside\nconcurrency: 2\n", 3, "YAML syntax error"),
    ("tab-indent", "version: 1\nfolders:\n\t- path: inside\n", 3, "not tabs"),
    (
        "duplicate-key",
        "version: 1\nconcurrency: 2\nfolders:\n  - path: inside\nconcurrency: 3\n",
        5,
        "duplicate key 'concurrency' (first on line 2, again on line 5)",
    ),
    (
        "unknown-top-key",
        "version: 1\nconcurency: 3\nfolders:\n  - path: inside\n",
        2,
        "unknown key 'concurency': did you mean 'concurrency'?",
    ),
    (
        "unknown-folder-key",
        "version: 1\nfolders:\n  - path: inside\n    spaec: outdoor\n",
        4,
        "unknown key 'spaec': did you mean 'space'?",
    ),
    (
        "unknown-rate-limit-key",
        "version: 1\nrate_limit:\n  order: 5\nfolders:\n  - path: inside\n",
        3,
        "did you mean 'orders'?",
    ),
    (
        "unknown-defaults-key",
        "version: 1\ndefaults:\n  recursve: true\nfolders:\n  - path: inside\n",
        3,
        "did you mean 'recursive'?",
    ),
    ("version-missing", "folders:\n  - path: inside\n", 1, "needs 'version: 1'"),
    ("version-2", "version: 2\nfolders:\n  - path: inside\n", 1, "unsupported manifest version 2"),
    ("version-text", 'version: "1"\nfolders:\n  - path: inside\n', 1, "must be the number 1"),
    ("version-float", "version: 1.0\nfolders:\n  - path: inside\n", 1, "must be the number 1"),
    ("version-bool", "version: true\nfolders:\n  - path: inside\n", 1, "must be the number 1"),
    (
        "folder-not-a-mapping",
        "version: 1\nfolders:\n  - inside\n",
        3,
        "must be a mapping of keys",
    ),
    ("folders-missing", "version: 1\nconcurrency: 2\n", 1, "needs a 'folders:' list"),
    ("folders-empty", "version: 1\nfolders: []\n", 2, "must not be an empty list"),
    (
        "folder-path-key-missing",
        "version: 1\nfolders:\n  - path: inside\n  - space: outdoor\n",
        4,
        "needs a 'path:'",
    ),
    # /dev/null exists on every POSIX system and is not a folder.
    ("folder-is-a-file", "version: 1\nfolders:\n  - path: /dev/null\n", 3, "not a folder"),
    (
        "same-folder-twice",
        "version: 1\nfolders:\n  - path: inside\n  - path: outside\n  - path: ./inside/\n",
        5,
        "listed twice (lines 3 and 5)",
    ),
    ("concurrency-0", "version: 1\nconcurrency: 0\nfolders:\n  - path: inside\n", 2, "at least 1"),
    (
        "concurrency-text",
        'version: 1\nconcurrency: "four"\nfolders:\n  - path: inside\n',
        2,
        "must be a whole number",
    ),
    (
        "concurrency-bool",
        "version: 1\nfolders:\n  - path: inside\nconcurrency: true\n",
        4,
        "must be a whole number",
    ),
    (
        "concurrency-too-big",
        "version: 1\nconcurrency: 1000\nfolders:\n  - path: inside\n",
        2,
        "at most 256",
    ),
    (
        "orders-0",
        "version: 1\nrate_limit:\n  orders: 0\n  per_seconds: 600\nfolders:\n  - path: inside\n",
        3,
        "at least 1",
    ),
    (
        "per-seconds-negative",
        "version: 1\nrate_limit: {orders: 10, per_seconds: -5}\nfolders:\n  - path: inside\n",
        2,
        "more than 0",
    ),
    (
        "retry-attempts-too-big",
        "version: 1\nretry:\n  attempts: 50\nfolders:\n  - path: inside\n",
        3,
        "at most 20",
    ),
    (
        "enhancements-not-a-list",
        'version: 1\nfolders:\n  - path: inside\n    enhancements: "Add Fire to Fireplace"\n',
        4,
        "must be a list",
    ),
    (
        "patterns-empty",
        "version: 1\ndefaults:\n  patterns: []\nfolders:\n  - path: inside\n",
        3,
        "must not be an empty list",
    ),
    (
        "pattern-with-folder",
        "version: 1\nfolders:\n  - path: inside\n    patterns: ['**/*.jpg']\n",
        4,
        "file names, not paths",
    ),
    (
        "space-empty",
        'version: 1\nfolders:\n  - path: inside\n    space: "  "\n',
        4,
        "must not be empty",
    ),
    (
        "value-left-out",
        "version: 1\noutput:\nfolders:\n  - path: inside\n",
        2,
        "has no value",
    ),
    (
        "api-key-env-invalid",
        "version: 1\napi_key_env: 9-lives\nfolders:\n  - path: inside\n",
        2,
        "name of an environment variable",
    ),
    (
        "python-tag",
        "version: 1\nfolders:\n  - path: !!python/object/apply:os.system ['true']\n",
        3,
        "tags",
    ),
    ("custom-tag", "version: 1\nfolders: !folders\n  - path: inside\n", 2, "tags"),
    (
        "alias",
        "version: 1\ndefaults:\n  enhancements: &e [Add Fire to Fireplace]\n"
        "folders:\n  - path: inside\n    enhancements: *e\n",
        3,
        "anchors and aliases are not allowed in a manifest",
    ),
    (
        "api-key",
        f"version: 1\napi_key: {CANARY_KEY}\nfolders:\n  - path: inside\n",
        2,
        "the API key never lives in the manifest: set AIHD_API_KEY (or api_key_env)",
    ),
    (
        "x-api-key-in-folder",
        f"version: 1\nfolders:\n  - path: inside\n    x-api-key: '{CANARY_KEY}'\n",
        4,
        "the API key never lives in the manifest",
    ),
    ("empty-file", "", 1, "the manifest is empty"),
    ("comments-only", "# nothing yet\n", 1, "the manifest is empty"),
    ("top-level-list", "- path: inside\n- path: outside\n", 1, "must be a mapping"),
]


def _tree(tmp_path: Path) -> Path:
    """A folder with the "inside" and "outside" photo folders the manifests refer to."""
    for name in ("inside", "outside"):
        (tmp_path / name).mkdir()
    return tmp_path


def _write(folder: Path, text: str, name: str = "listing.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "line", "phrase"),
    [pytest.param(text, line, phrase, id=case) for case, text, line, phrase in BAD_MANIFESTS],
)
def test_bad_manifest_names_file_line_and_problem(
    tmp_path: Path, text: str, line: int, phrase: str
) -> None:
    """Each bad manifest raises ManifestError with FILE:LINE: and what is wrong."""
    path = _write(_tree(tmp_path), text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert phrase in message
    assert CANARY_KEY not in message
    assert caught.value.exit_code == 2


def test_good_manifest_applies_defaults_and_overrides(tmp_path: Path) -> None:
    """Defaults fill in what a folder leaves out; paths come back absolute."""
    folder = _tree(tmp_path)
    (folder / "inside" / "kitchen").mkdir()
    path = _write(
        folder,
        "version: 1\n"
        "output: results\n"
        "concurrency: 8\n"
        "rate_limit: {orders: 5, per_seconds: 60}\n"
        "retry:\n  attempts: 3\n  max_backoff: 2.5\n"
        "api_key_env: MY_AIHD_KEY\n"
        "defaults:\n"
        "  space: outdoor\n"
        '  enhancements: ["Add Fire to Fireplace"]\n'
        "  recursive: true\n"
        "folders:\n"
        "  - path: inside\n"
        "    space: indoor\n"
        '    enhancements: ["Add Fire to Fireplace", "Add Screen to TV", "add fire to fireplace"]\n'
        "    recursive: false\n"
        '    patterns: ["*.jpg", "*.JPG"]\n'
        "  - path: outside\n"
        "  - path: inside/kitchen\n"
        "    enhancements: []\n",
    )
    manifest = load_manifest(path)
    assert manifest.path == path.resolve()
    assert manifest.version == 1
    assert manifest.ledger is None  # the account's ledger (tests/test_accounts.py)
    assert manifest.legacy_ledger == tmp_path.resolve() / "listing.ledger.sqlite"
    assert manifest.account == "default"
    assert manifest.output == tmp_path.resolve() / "results"
    assert manifest.concurrency == 8
    assert manifest.rate_limit == RateLimit(orders=5, per_seconds=60.0)
    assert manifest.retry == RetryPolicy(attempts=3, max_backoff=2.5)
    assert manifest.api_key_env == "MY_AIHD_KEY"
    inside, outside, kitchen = manifest.folders
    assert inside == FolderSpec(
        path=tmp_path.resolve() / "inside",
        name="inside",
        space="indoor",
        enhancements=("Add Fire to Fireplace", "Add Screen to TV"),
        recursive=False,
        patterns=("*.jpg", "*.JPG"),
        line=14,
        space_line=15,
        enhancements_line=16,
    )
    assert outside == FolderSpec(
        path=tmp_path.resolve() / "outside",
        name="outside",
        space="outdoor",
        enhancements=("Add Fire to Fireplace",),
        recursive=True,
        patterns=("*.jpg", "*.jpeg", "*.png", "*.webp"),
        line=19,
        space_line=10,
        enhancements_line=11,
    )
    assert kitchen.path == tmp_path.resolve() / "inside" / "kitchen"
    assert kitchen.name == "inside/kitchen"
    assert kitchen.enhancements == ()
    assert kitchen.enhancements_line == 21


def test_minimal_manifest_uses_documented_defaults(tmp_path: Path) -> None:
    """Only version and folders are needed; everything else has the documented default."""
    path = _write(_tree(tmp_path), "version: 1\nfolders:\n  - path: outside\n", "nightly.yml")
    manifest = load_manifest(path)
    assert manifest.ledger is None  # the account's ledger
    assert manifest.legacy_ledger == tmp_path.resolve() / "nightly.ledger.sqlite"
    assert manifest.output == tmp_path.resolve() / "enhanced"
    assert (manifest.concurrency, manifest.api_key_env) == (4, "AIHD_API_KEY")
    assert manifest.rate_limit == RateLimit(orders=10, per_seconds=600.0)
    assert manifest.retry == RetryPolicy(attempts=5, max_backoff=60.0)
    (folder,) = manifest.folders
    assert (folder.space, folder.enhancements, folder.recursive) == ("indoor", (), False)
    assert folder.patterns == ("*.jpg", "*.jpeg", "*.png", "*.webp")
    assert folder.space_line == folder.enhancements_line == folder.line == 3


def test_paths_are_relative_to_the_manifest_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest loaded from elsewhere still finds its folders and ledger beside it."""
    _tree(tmp_path)
    path = _write(tmp_path, "version: 1\nledger: state/run.sqlite\nfolders:\n  - path: inside\n")
    elsewhere = tmp_path / "outside"
    monkeypatch.chdir(elsewhere)
    manifest = load_manifest(Path("..") / "listing.yaml")
    assert manifest.ledger == tmp_path.resolve() / "state" / "run.sqlite"
    assert manifest.folders[0].path == tmp_path.resolve() / "inside"
    assert path.resolve() == manifest.path


def test_folder_that_is_a_regular_file_is_refused(tmp_path: Path) -> None:
    """A path to a photo instead of its folder is an error naming the resolved path."""
    _tree(tmp_path)
    (tmp_path / "inside" / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    path = _write(tmp_path, "version: 1\nfolders:\n  - path: inside/photo.jpg\n")
    with pytest.raises(ManifestError, match="not a folder") as caught:
        load_manifest(path)
    assert str(tmp_path.resolve() / "inside" / "photo.jpg") in str(caught.value)
    assert caught.value.line == 3


def test_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    """A billion-laughs document fails on its first anchor, without expanding anything."""
    rows = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    rows += [f"a{n}: &a{n} [{','.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    path = _write(_tree(tmp_path), "version: 1\n" + "\n".join(rows) + "\n")
    started = time.perf_counter()
    with pytest.raises(ManifestError, match="anchors and aliases are not allowed"):
        load_manifest(path)
    assert time.perf_counter() - started < 1.0


def test_oversized_manifest_is_refused(tmp_path: Path) -> None:
    """A file over 1 MB is refused before it is parsed."""
    path = _write(tmp_path, "version: 1\n" + "# padding\n" * 120_000)
    with pytest.raises(ManifestError, match="over 1 MB"):
        load_manifest(path)


def test_unreadable_manifests_name_the_file(tmp_path: Path) -> None:
    """A missing file, a folder, or non-UTF-8 bytes each give a ManifestError."""
    with pytest.raises(ManifestError, match="cannot read the manifest") as caught:
        load_manifest(tmp_path / "missing.yaml")
    assert "missing.yaml" in str(caught.value)
    with pytest.raises(ManifestError, match="cannot read the manifest"):
        load_manifest(tmp_path)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"version: 1\nfolders:\n  - path: caf\xe9\n")
    with pytest.raises(ManifestError, match="not UTF-8") as caught:
        load_manifest(latin)
    assert caught.value.line == 3


def test_error_carries_path_line_and_key(tmp_path: Path) -> None:
    """The CLI can read where the problem is from the exception's fields."""
    path = _write(
        _tree(tmp_path), "version: 1\nretry:\n  max_backoff: 0\nfolders: [{path: inside}]\n"
    )
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert (caught.value.path, caught.value.line, caught.value.key) == (
        path,
        3,
        "retry.max_backoff",
    )
    assert str(caught.value) == (
        f"{path}:3: retry.max_backoff: must be more than 0, not 0 (seconds; 60 is a good start)"
    )


def test_json_schema_describes_the_manifest() -> None:
    """`aihd schema` output is JSON Schema with the manifest's keys, refusing unknown ones."""
    schema = manifest_json_schema()
    json.dumps(schema)  # must be plain JSON
    assert str(schema["$schema"]).startswith("https://json-schema.org/")
    properties = schema["properties"]
    assert isinstance(properties, dict)
    assert {"version", "folders", "concurrency", "rate_limit", "retry", "defaults"} <= set(
        properties
    )
    assert properties["version"]["const"] == 1
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"version", "folders"}  # type: ignore[call-overload]
