"""The package's imports run one way: cli -> app -> serve -> ordering / collect / review ->
manifest -> api / ledger -> the base modules (errors, bootclock, retry, ...).

Read from the source (every import, those inside functions too), so a lazy import that reaches
upward fails here as a top-level one would. ARCHITECTURE.md draws the same map.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"

# The part of ``pipeline`` a module belongs to, and that part's layer: a module may import its
# own part and any part of a lower layer, never a higher one nor a sibling of its own layer.
LAYERS: dict[str, int] = {
    # base: imported by everything, importing nothing of aihd but each other
    "": 0,
    "errors": 0,
    "bootclock": 0,
    "retry": 0,
    "logs": 0,
    "eventloop": 0,
    "addresses": 0,
    "columns": 0,
    "stopping": 0,
    "files": 0,
    "filenames": 0,
    # the API and the ledger: neither knows the other
    "api": 1,
    "ledger": 1,
    # what the user wrote
    "manifest": 2,
    # what aihd does with it
    "ordering": 3,
    "collect": 3,
    "review": 3,
    # the always-on process: ordering, collecting (and the review desk) in one
    "serve": 4,
    # a command's request and its reports
    "app": 5,
    "cli": 6,
    "__main__": 7,
    # the local emulator: beside the client, sharing only the API's shapes (see below)
    "sandbox": 1,
}
# The sandbox emulates the API: it may use the API's documented shapes, never the client.
SANDBOX_MAY_IMPORT = {"pipeline.api", "pipeline.api.v1_shapes", "pipeline.api.v3_shapes"}
# Only the commands start an emulator (``aihd sandbox``, ``--sandbox``).
SANDBOX_IMPORTED_BY = {"app", "cli"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ``pipeline`` module this file imports, with the line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "pipeline":
                found += [(node.lineno, f"pipeline.{alias.name}") for alias in node.names]
            elif node.module.startswith("pipeline."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("pipeline.")]
    return found


def _above_or_beside(other: str, own: str) -> bool:
    """``other`` sits above ``own``, or is a sibling of its layer (base modules excepted)."""
    return LAYERS[other] > LAYERS[own] or (LAYERS[other] == LAYERS[own] and LAYERS[own] > 0)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {_part(_module_name(path)) for path in _modules()}
    assert parts - set(LAYERS) == set(), "give each new part a layer in LAYERS (and ARCHITECTURE)"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_imports_upward(path: Path) -> None:
    """A module imports its own part and lower layers only; the sandbox only the API's shapes."""
    module = _module_name(path)
    own = _part(module)
    wrong = []
    for line, imported in _imports(path):
        other = _part(imported)
        if other == "__version__":
            continue  # pipeline.__version__, the package's own attribute
        if other == own:
            continue
        if own == "sandbox" and imported not in SANDBOX_MAY_IMPORT and LAYERS[other] != 0:
            wrong.append(f"{path.name}:{line}: the sandbox imports {imported}")
        elif other == "sandbox" and own not in SANDBOX_IMPORTED_BY:
            wrong.append(f"{path.name}:{line}: {module} starts the emulator ({imported})")
        elif own != "sandbox" and other != "sandbox" and _above_or_beside(other, own):
            wrong.append(f"{path.name}:{line}: {module} (layer {LAYERS[own]}) imports {imported}")
    assert wrong == []


def _private_uses(path: Path) -> list[str]:
    """Private names this module takes from another aihd module (``from x import _y``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline")
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]


def test_no_module_takes_another_modules_private_names() -> None:
    """A name with a leading underscore stays in its module: what others need is public."""
    found = [use for path in sorted(PACKAGE.rglob("*.py")) for use in _private_uses(path)]
    assert not found, f"private names imported across modules: {found}"


def test_every_public_module_says_what_it_exports() -> None:
    """Each module has ``__all__``, and every name in it is defined there (no stale entry);
    a package whose ``__init__`` holds only its docstring exports nothing."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        exported: list[str] | None = None
        defined: set[str] = set()
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                if isinstance(node.value, ast.Attribute):  # another module's __all__, re-exported
                    exported = []
                    defined.add("__all__")
                else:
                    exported = list(ast.literal_eval(node.value))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, ast.Assign):
                defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined.add(node.target.id)
        name = str(path.relative_to(PACKAGE.parent))
        if path.name == "__init__.py" and not {n for n in defined if not n.startswith("__")}:
            continue  # a package's docstring alone: nothing to export
        if exported is None:
            problems.append(f"{name}: no __all__")
        else:
            problems += [
                f"{name}: __all__ names {n}, not defined" for n in exported if n not in defined
            ]
    assert not problems, problems
