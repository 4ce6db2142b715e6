"""The ledger's SQL exists once: each statement is written in one place and both stores run it
(PostgreSQL through the placeholder adapter, postgres_sql.SqliteStyle). The SQL that keeps a
photo from being paid twice must not drift between two copies."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

LEDGER = Path(__file__).resolve().parent.parent / "pipeline" / "ledger"
_STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER)\b", re.I)
_WORDS = 5  # "SELECT", "UPDATE photos SET": fragments of a statement built in parts


def _statements(path: Path) -> list[tuple[int, str]]:
    """Each string (or f-string, its fields as {}) that starts a statement, normalized:
    placeholders as SQLite writes them, whitespace as one space."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        else:
            continue
        if _STATEMENT.match(text):
            text = re.sub(r"\s+", " ", text.replace("%s", "?")).strip()
            if len(text.split()) >= _WORDS:
                found.append((node.lineno, text))
    return found


def test_no_sql_statement_is_written_twice_in_the_ledger() -> None:
    places: dict[str, list[str]] = defaultdict(list)
    for path in sorted(LEDGER.glob("*.py")):
        for line, text in _statements(path):
            places[text].append(f"{path.name}:{line}")
    twice = {text: where for text, where in places.items() if len(where) > 1}
    assert len(places) > 60, "the ledger's SQL was not found: did its form change?"
    assert not twice, "\n".join(f"{where}: {text[:100]}" for text, where in twice.items())
