"""The front door stays a front door: README under 10 KB, its links resolve, and the
commands it lists exist in the CLI (a renamed command must not leave the README stale)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.main import get_command

from loadgate.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def test_readme_is_at_most_10_kb():
    assert README.stat().st_size <= 10 * 1024


def test_readme_links_resolve():
    text = README.read_text()
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert links, "README links no document"
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing


def test_every_docs_file_is_linked_from_readme():
    text = README.read_text()
    unlinked = [p.name for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in text]
    assert not unlinked, f"docs without a README entry: {unlinked}"


def test_readme_commands_exist():
    text = README.read_text()
    used = set(re.findall(r"^loadgate ([a-z-]+)", text, flags=re.M))
    assert {"run", "report", "plan"} <= used
    known = set(get_command(app).commands)  # type: ignore[attr-defined]
    assert used <= known, used - known
