"""The README cannot drift: its command reference is `--help`, and it names every manifest key."""

from __future__ import annotations

from pipeline.manifest.loader import manifest_json_schema
from tests.readme_reference import README, current, render


def test_the_readme_command_reference_is_what_help_says() -> None:
    """Regenerate with `python -m tests.readme_reference` when a command or option changes."""
    block = current(README.read_text(encoding="utf-8"))
    assert block, "README.md lost its command reference markers"
    assert block == render(), "README is stale: run `python -m tests.readme_reference`"


def test_the_readme_shows_every_manifest_key() -> None:
    """Each key of the manifest's schema (top level, defaults, folders) appears as `key:`."""
    schema = manifest_json_schema()
    defs = schema["$defs"]
    assert isinstance(defs, dict)
    keys = set(schema["properties"])  # type: ignore[arg-type]
    for model in defs.values():
        keys |= set(model.get("properties", {}))
    text = README.read_text(encoding="utf-8")
    missing = sorted(k for k in keys if f"{k}:" not in text)
    assert not missing, f"README's manifest example lacks: {missing}"


def test_the_readme_shows_the_standalone_sandbox_workflow() -> None:
    """`aihd sandbox` with a fault option, then AIHD_BASE_URL pointing at it."""
    text = README.read_text(encoding="utf-8")
    assert "aihd sandbox --port" in text and "--error-rate" in text
    assert "AIHD_BASE_URL=http://127.0.0.1:" in text


def test_gitignore_ignores_build_output_and_no_tracked_file() -> None:
    """build/ and dist/ are ignored; no file the repository tracks matches .gitignore."""
    import shutil
    import subprocess

    import pytest

    root = README.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )

    assert git("check-ignore", "-q", "build/lib/x.py").returncode == 0
    assert git("check-ignore", "-q", "dist/aihd.whl").returncode == 0
    tracked_but_ignored = git("ls-files", "--cached", "--ignored", "--exclude-standard")
    assert tracked_but_ignored.returncode == 0 and tracked_but_ignored.stdout == ""


def test_every_file_and_function_architecture_names_exists() -> None:
    """ARCHITECTURE.md's `pkg/module.py` and `pkg/module.name` point at real code: a move or
    a rename that leaves the map behind fails here."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    text = (root / "ARCHITECTURE.md").read_text(encoding="utf-8")
    refs = re.findall(
        r"`((?:tests/)?[a-z_0-9]+/[a-z_0-9]+)(?:\.py|\.([A-Za-z_][A-Za-z_0-9]*))`", text
    )
    assert len(refs) > 40, "the map names fewer files than it did: did its form change?"
    missing = []
    for module, name in refs:
        top = module.startswith(("tests/", "pipeline/"))
        path = root / (f"{module}.py" if top else f"pipeline/{module}.py")
        if not path.is_file():
            missing.append(f"{module}.py")
        elif name and not re.search(rf"\b{name}\b", path.read_text(encoding="utf-8")):
            missing.append(f"{module}.{name}")
    assert not missing, f"ARCHITECTURE.md names what is not there: {missing}"
