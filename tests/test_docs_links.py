"""Every relative link in the project's Markdown resolves: the file exists and, for a
``#fragment`` into a Markdown file, a heading (or an ``<a id>``) there has that anchor.

Anchors follow GitHub's rule: the heading's text as rendered, lower-cased, without
punctuation other than ``-`` and ``_``, spaces as hyphens, ``-1``, ``-2`` ... on
repeats. A heading that gains a date breaks every link to it silently
(``performance.md#business-rules-on-vs-off`` did); this finds it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

_FENCE = re.compile(r"^\s*(```|~~~)")
#: ``[text](target)`` and ``![alt](target)``, the text possibly holding one ``[...]``.
_LINK = re.compile(r"\[(?:[^\][]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r'<a\s+(?:id|name)="([^"]+)"')


def slug(heading: str) -> str:
    """GitHub's anchor of a heading's Markdown text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"`|\*\*|\*", "", text).strip().lower()  # code and emphasis marks
    kept = (c for c in text if c in " -" or unicodedata.category(c)[0] in "LMN" or c == "_")
    return "".join(kept).replace(" ", "-")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(number, line) of the lines outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield number, line


@cache
def anchors(path: Path) -> frozenset[str]:
    found: set[str] = set()
    repeats: dict[str, int] = {}
    for _, line in _lines(path):
        heading = _HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            n = repeats.get(base, 0)
            found.add(base if n == 0 else f"{base}-{n}")
            repeats[base] = n + 1
        found.update(_HTML_ANCHOR.findall(line))
    return frozenset(found)


def broken_links(root: Path) -> list[str]:
    """``file:line: target (why)`` for each relative link under ``root`` that does not resolve."""
    problems = []
    for path in sorted(root.rglob("*.md")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # .venv, .git, caches
        for number, line in _lines(path):
            for target in _LINK.findall(re.sub(r"`[^`]*`", "", line)):
                if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target):
                    continue  # http:, https:, mailto:
                file, _, anchor = target.partition("#")
                dest = (path.parent / file).resolve() if file else path
                where = f"{path.relative_to(root)}:{number}: {target}"
                if not dest.exists():
                    problems.append(f"{where} (no such file)")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    problems.append(f"{where} (no heading with that anchor)")
    return problems


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Business rules on vs off (2026-12-02)", "business-rules-on-vs-off-2026-12-02"),
        ("Dashboard (`app/dashboard`)", "dashboard-appdashboard"),
        ("On a GPU: NVIDIA H200, 2026-12-04", "on-a-gpu-nvidia-h200-2026-12-04"),
        ("[Readiness](x.md) and *more*", "readiness-and-more"),
    ],
)
def test_slug_is_githubs_anchor(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_a_link_to_a_heading_that_changed_is_found(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\n## Rules on vs off (2026-12-02)\n\n## Twice\n## Twice\n")
    (tmp_path / "b.md").write_text(
        "[ok](a.md#rules-on-vs-off-2026-12-02) [ok](a.md#twice-1) [ok](#b)\n"
        "[stale](a.md#rules-on-vs-off) [gone](c.md) `[code](c.md)`\n"
        '```\n[fenced](c.md)\n```\n<a id="b"></a>\n'
    )
    assert broken_links(tmp_path) == [
        "b.md:2: a.md#rules-on-vs-off (no heading with that anchor)",
        "b.md:2: c.md (no such file)",
    ]


def test_every_relative_link_in_the_docs_resolves() -> None:
    assert broken_links(REPO_ROOT) == []
