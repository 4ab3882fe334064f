"""The documentation stands on its own: everything it and the code cite is in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
# Documents that were never part of the repository; spelt in pieces so this file is no hit.
OUTSIDE = re.compile("|".join([r"\bDESIGN" + r"\.md", r"\bNOTES" + r"\.md", r"\bTESTING" + r"\.md",
                               r"\bSTYLE" + r"\.md", r"\.\./" + "shared", "/" + "work/"]))
TEXT_SUFFIXES = {".py", ".md", ".toml", ".j2", ".txt", ".cfg", ".ini", ".mako", ""}
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def project_files() -> list[Path]:
    files = [ROOT / name for name in ("README.md", "config.example.toml", "pyproject.toml",
                                      "Dockerfile", ".ci/run")]
    for folder in ("mailbot", "tests", "bench", "docs", "templates", "migrations"):
        files += (p for p in (ROOT / folder).rglob("*")
                  if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts)
    data = ROOT / "tests" / "data"  # third-party and hand-made mail: not the project's words
    return [p for p in files if p.is_file() and data not in p.parents]


def test_nothing_cites_a_document_or_a_path_outside_the_repository() -> None:
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
            for p in project_files()
            for n, line in enumerate(p.read_text("utf-8", errors="replace").splitlines(), 1)
            if OUTSIDE.search(line)]
    assert hits == []


def test_the_design_document_covers_what_a_contributor_needs_and_the_readme_links_it() -> None:
    design = DESIGN.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", design, re.MULTILINE)
    for needed in ("The trip of one message", "Invariants", "Cases", "Deadlines", "Threading",
                   "Trust", "Configuration", "The command line and its JSON"):
        assert needed in headings
    assert "](docs/design.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_design_names_every_field_of_the_json_contract() -> None:
    design = DESIGN.read_text(encoding="utf-8")
    for field in ("id", "status", "reporter", "subject", "received_at", "ack_due",
                  "acknowledged_at", "assessment_due", "assessed_at", "message_count", "flags",
                  "messages", "events", "direction", "kind", "from", "to", "message_id", "date"):
        assert f"`{field}`" in design


@pytest.mark.parametrize("doc", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: p.name)
def test_every_relative_link_in_the_docs_leads_to_a_file(doc: Path) -> None:
    targets = [t for t in LINK.findall(doc.read_text(encoding="utf-8")) if "://" not in t]
    missing = [t for t in targets if not (doc.parent / t).exists()]
    assert missing == []
