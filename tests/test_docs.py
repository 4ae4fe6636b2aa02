"""The docs stay navigable: README.md is short (at most 300 lines; the rest lives in docs/),
every relative link in README.md and docs/*.md points to a file that exists, every link to a
heading of a Markdown file names a heading that exists, and README links every docs page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 300

#: [text](target) and ![alt](target); the target ends at the first space or ")".
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~)")
_EXTERNAL = ("http://", "https://", "mailto:")


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code, where links are links."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(lines)


def links(path: Path) -> list[str]:
    return _LINK.findall(_prose(path.read_text(encoding="utf-8")))


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in _prose(path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base, n = anchor(m.group(1)), 0
            name = base
            while name in found:  # GitHub numbers repeated headings: x, x-1, x-2
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for target in links(path):
        if target.startswith(_EXTERNAL):
            continue
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{target}: {dest.relative_to(root)} does not exist")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            problems.append(f"{target}: no heading #{fragment} in {dest.relative_to(root)}")
    return problems


def test_readme_is_at_most_300_lines():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_README_LINES, (
        f"README.md has {n} lines (limit {MAX_README_LINES}): move details into docs/"
    )


def test_the_docs_pages_exist():
    names = {p.name for p in DOCS}
    want = {"user-guide.md", "model-card.md", "site-validation.md"}
    want |= {"developer-guide.md", "experiments.md"}
    assert want <= names, f"missing: {sorted(want - names)}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_existing_files_and_headings(page):
    assert broken_links(page) == []


def test_readme_links_every_docs_page():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(README)}
    assert [p.name for p in DOCS if p.resolve() not in linked] == []


def test_the_link_check_catches_a_missing_file_and_heading(tmp_path):
    (tmp_path / "b.md").write_text("# Real heading\n")
    page = tmp_path / "a.md"
    page.write_text(
        "[ok](b.md#real-heading) [gone](missing.md) [bad](b.md#no-such) "
        "`[code](ignored.md)` [web](https://example.org/x)\n```\n[fenced](ignored.md)\n```\n"
    )
    problems = broken_links(page, root=tmp_path)
    assert problems == [
        "missing.md: missing.md does not exist",
        "b.md#no-such: no heading #no-such in b.md",
    ]
