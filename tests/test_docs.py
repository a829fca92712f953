"""The README is a short front door and every page it leads to exists.

The README stays at most 200 lines and shows the commands a newcomer and CI run; the longer prose lives in
`docs/`, measured tables in `bench/results/`. A link, image or anchor that points nowhere, a `docs/` page the
README does not link, or a repository path a page names that no longer exists fails here, so the pages follow
the code when files move.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 200
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "bench" / "results").glob("*.md"))]

FENCED_BLOCK = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target), with an optional "title"; the text may hold one level of brackets.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
# A file or folder of this repository named in backticks or in a command: `tests/test_resume.py`.
REPOSITORY_PATH = re.compile(r"^(?:bench|callbacks|codecgan|docs|experiments|tests)/[\w./-]*$")


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def without_fenced_blocks(text: str) -> str:
    return FENCED_BLOCK.sub("", text)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped (not `-` or `_`), spaces as `-`."""
    text = INLINE_CODE.sub(lambda code: code.group(0).strip("`"), heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor; a repeated heading gets `-1`, `-2`, ... as on GitHub."""
    seen: Counter[str] = Counter()
    result = set()
    for heading in HEADING.findall(without_fenced_blocks(page.read_text())):
        anchor = github_anchor(heading)
        result.add(anchor if seen[anchor] == 0 else f"{anchor}-{seen[anchor]}")
        seen[anchor] += 1
    return result


def relative_links(page: Path) -> list[str]:
    prose = INLINE_CODE.sub("", without_fenced_blocks(page.read_text()))
    return [target for target in LINK.findall(prose) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def named_repository_paths(page: Path) -> list[str]:
    text = page.read_text()
    spans = [code.strip("`") for code in INLINE_CODE.findall(without_fenced_blocks(text))]
    commands = [word for block in FENCED_BLOCK.findall(text) for word in block.split()]
    return [path for path in [*spans, *commands] if REPOSITORY_PATH.match(path)]


def test_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; move prose into docs/ (at most {README_MAX_LINES})."
    )


@pytest.mark.parametrize("command", ["make demo", "make test", "make test-slow"])
def test_readme_shows_the_commands_newcomers_and_ci_run(command: str) -> None:
    shown = [
        line.split("#")[0].strip() for block in FENCED_BLOCK.findall(README.read_text()) for line in block.splitlines()
    ]
    assert command in shown, f"README.md shows no `{command}` line in a code block."


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_and_image_points_to_an_existing_file_and_heading(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target} (no file {destination.relative_to(ROOT)})")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target} (no heading #{anchor} in {destination.relative_to(ROOT)})")
    assert not broken, f"{page_id(page)} links to: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in relative_links(README)}
    unlinked = [page_id(page) for page in sorted((ROOT / "docs").glob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"README.md does not link {', '.join(unlinked)}."


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_repository_path_a_page_names_exists(page: Path) -> None:
    missing = sorted({path for path in named_repository_paths(page) if not (ROOT / path).exists()})
    assert not missing, f"{page_id(page)} names paths that do not exist: {', '.join(missing)}."


def test_the_checks_find_what_they_look_for() -> None:
    """The regular expressions above read the pages as intended (so an empty result is not a silent pass)."""
    assert github_anchor("`codecgan test`: the papers' tables from a checkpoint") == (
        "codecgan-test-the-papers-tables-from-a-checkpoint"
    )
    assert "docs/dashboard.png" in relative_links(README)
    assert "the-gan-loop" in anchors(ROOT / "docs" / "training.md")
    assert "tests/test_resume.py" in named_repository_paths(ROOT / "docs" / "multi-gpu-and-resume.md")
