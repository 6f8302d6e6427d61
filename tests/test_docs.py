"""The documentation's links hold (issue 27): every relative link and every ``#anchor`` in
README.md, WORKSPACE.md and docs/*.md names a file or folder that exists and, for a Markdown
file, a heading in it (GitHub's anchor slugs). Also the README stays short."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import pytest

from normface.utils import paths

ROOT = paths.REPO_ROOT
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^()\s>]*(?:\([^()\s]*\)[^()\s>]*)*)>?(?:\s+[\"'][^)]*)?\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ID = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "WORKSPACE.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text (code spans, emphasis and links reduced
    to their text), lower case, punctuation other than ``-`` and ``_`` dropped, spaces -> ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = CODE_SPAN.sub(lambda m: m.group(2), text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"(\*\*|__|\*|(?<!\w)_(?!\w))", "", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor (repeats get -1, -2, ... as on GitHub) and explicit HTML anchors."""
    found, seen = set(), {}
    for _, line in prose_lines(text):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(HTML_ID.findall(line))
    return found


def links(text: str):
    """(line number, target) of every inline, image and reference-style link outside code."""
    for number, line in prose_lines(text):
        bare = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        for match in INLINE_LINK.finditer(bare):
            yield number, match.group(1)
        ref = REFERENCE_LINK.match(bare)
        if ref:
            yield number, ref.group(1)


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """What does not resolve in ``path``: ``file:line: target (reason)`` each."""
    problems = []
    text = path.read_text()
    for number, target in links(text):
        if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # an absolute URL (http:, mailto:...): not checked offline
        where, _, anchor = target.partition("#")
        where = urllib.parse.unquote(where)
        if where.startswith("/"):
            problems.append(f"{path.name}:{number}: {target} (an absolute path: links must be relative)")
            continue
        dest = (path.parent / where).resolve() if where else path
        if not dest.exists():
            problems.append(f"{path.name}:{number}: {target} (no such file or folder)")
            continue
        try:
            dest.relative_to(root.resolve())
        except ValueError:
            problems.append(f"{path.name}:{number}: {target} (outside the repository)")
            continue
        if anchor:
            if dest.suffix.lower() != ".md" or not dest.is_file():
                problems.append(f"{path.name}:{number}: {target} (an anchor into a file that is not Markdown)")
            elif urllib.parse.unquote(anchor).lower() not in anchors(dest.read_text()):
                problems.append(f"{path.name}:{number}: {target} (no heading #{anchor} in {dest.name})")
    return problems


def test_every_relative_link_and_anchor_resolves():
    files = doc_files()
    assert len(files) > 3 and all(f.is_file() for f in files)
    problems = [p for f in files for p in broken_links(f)]
    assert not problems, "\n".join(problems)


def test_the_docs_link_each_other():
    readme = (ROOT / "README.md").read_text()
    linked = {(ROOT / t.partition("#")[0]).resolve() for _, t in links(readme) if t.partition("#")[0]}
    for page in [*(ROOT / "docs").glob("*.md"), ROOT / "WORKSPACE.md"]:
        assert page.resolve() in linked, f"README.md does not link {page.relative_to(ROOT)}"


def test_readme_is_short():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 220 and len(text.encode()) <= 20 * 1024


@pytest.mark.parametrize("heading, anchor", [
    ("The server (`normface serve`)", "the-server-normface-serve"),
    ("Past one machine: Apache Beam (issue 21)", "past-one-machine-apache-beam-issue-21"),
    ("Speed, side by side with the reference", "speed-side-by-side-with-the-reference"),
    ("Training data (issues 4-5, 15)", "training-data-issues-4-5-15"),
    ("**Bold** and [a link](x.md) and snake_case", "bold-and-a-link-and-snake_case"),
])
def test_slugs_follow_github(heading, anchor):
    assert slug(heading) == anchor


def test_the_check_finds_broken_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "other.md").write_text("# Other page\n\n## A section\n\n## A section\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n## Here (`code`)\n\n"
        "[ok](../other.md) [ok](../other.md#a-section) [ok](../other.md#a-section-1) [ok](#here-code)\n"
        "![ok](../other.md) [web](https://example.com/x) `[not a link](gone.md)`\n\n"
        "```\n[in code](gone.md)\n```\n\n"
        "[gone](gone.md) [bad anchor](../other.md#nowhere) [bad local](#nowhere) [abs](/etc/passwd)\n"
        "[ref]: ../missing.md\n")
    problems = broken_links(page, root=tmp_path)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "gone.md (no such file or folder)",
        "../other.md#nowhere (no heading #nowhere in other.md)",
        "#nowhere (no heading #nowhere in page.md)",
        "/etc/passwd (an absolute path: links must be relative)",
        "../missing.md (no such file or folder)",
    ], problems
