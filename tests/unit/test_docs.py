"""The documentation's own links: every relative link in README.md and docs/*.md names a file
that exists and, after `#`, a heading that is there (as GitHub makes anchors)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", flags=re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", flags=re.M)


def anchors(doc: Path) -> set[str]:
    """GitHub's anchors: lower case, punctuation dropped, spaces as hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", doc.read_text())):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        if seen[slug]:
            seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def broken_links(doc: Path) -> list[str]:
    broken = []
    for target in LINK.findall(FENCE.sub("", doc.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not ours to check offline
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading with that anchor")
    return broken


def test_the_docs_links_resolve() -> None:
    found = {str(doc.relative_to(REPO)): broken_links(doc) for doc in DOCS}
    assert not {doc: links for doc, links in found.items() if links}


def test_the_docs_are_linked_from_the_front_page_or_the_index() -> None:
    readme, index = (REPO / "README.md").read_text(), (REPO / "docs" / "README.md").read_text()
    for doc in (doc for doc in DOCS if doc.name != "README.md"):
        assert f"docs/{doc.name}" in readme or f"]({doc.name}" in index, doc.name


def test_the_link_checker_sees_links() -> None:
    # So that a change to the patterns cannot make the first test pass on nothing.
    assert sum(len(LINK.findall(doc.read_text())) for doc in DOCS) > 50
    assert "stirshaken" in anchors(REPO / "docs" / "identity.md")
    assert "where-a-doors-cpu-goes" in anchors(REPO / "docs" / "benchmarks.md")
