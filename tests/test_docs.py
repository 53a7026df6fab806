"""The parts of README.md and docs/ that do not run (tests/test_readme.py runs the code blocks):

- a ```yaml block headed `# configs/NAME.yaml` shows the shipped file: its lines after the header are, in order
  and contiguous, lines of configs/NAME.yaml (the whole file, or a part of it), so a snippet cannot drift from it;
- a results table between `<!-- table: results/NAME.md -->` and `<!-- /table -->` is the stored file
  docs/results/NAME.md (a bench's table output), so figures are replaced by a bench's new output, never retyped;
  every stored table is shown somewhere;
- every relative link (`[text](page.md#anchor)`, images) reaches an existing file, and an anchor a heading of it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_readme import PAGES, ROOT, page_name

SNIPPET = re.compile(r"^```yaml\n# (configs/[\w.-]+\.yaml)\n(.*?)^```", re.S | re.M)
TABLE = re.compile(r"^<!-- table: (results/[\w.-]+\.md) -->\n(.*?)^<!-- /table -->$", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")
RESULTS = ROOT / "docs" / "results"


def snippets() -> list[tuple[str, str, str]]:
    return [(page_name(p), m.group(1), m.group(2)) for p in PAGES for m in SNIPPET.finditer(p.read_text())]


def tables() -> list[tuple[str, str, str]]:
    return [(page_name(p), m.group(1), m.group(2)) for p in PAGES for m in TABLE.finditer(p.read_text())]


def contains_lines(whole: str, part: str) -> bool:
    """Whether `part`'s lines are a contiguous run of `whole`'s lines."""
    lines, want = whole.splitlines(), part.splitlines()
    return any(lines[i : i + len(want)] == want for i in range(len(lines) - len(want) + 1))


def test_the_checks_find_what_they_check():
    assert {name for _, name, _ in snippets()} >= {"configs/small.yaml", "configs/staged.yaml", "configs/ki.yaml"}
    assert len(tables()) >= 10
    assert contains_lines("a\nb\nc\n", "b\nc\n") and not contains_lines("a\nb\nc\n", "a\nc\n")


@pytest.mark.parametrize(("page", "name", "body"), snippets(), ids=lambda v: v if "\n" not in v else "")
def test_config_snippet_is_the_shipped_file(page, name, body):
    shipped = ROOT / name
    assert shipped.is_file(), f"{page} shows {name}, which configs/ does not ship"
    assert contains_lines(shipped.read_text(), body), f"{page}: the {name} snippet differs from the shipped file"


@pytest.mark.parametrize(("page", "name", "body"), tables(), ids=lambda v: v if "\n" not in v else "")
def test_results_table_is_the_stored_file(page, name, body):
    stored = ROOT / "docs" / name
    assert stored.is_file(), f"{page} includes {name}, which does not exist"
    assert body == stored.read_text(), f"{page}: the table between the {name} markers differs from docs/{name}"


def test_every_stored_table_is_shown():
    shown = {name for _, name, _ in tables()}
    for path in sorted(RESULTS.glob("*.md")):
        assert f"results/{path.name}" in shown, f"docs/results/{path.name} is included by no page"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # a `# comment` in a code block is no heading
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.*)$", text, re.M)}


@pytest.mark.parametrize("path", PAGES, ids=page_name)
def test_links_resolve(path: Path):
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https://, mailto:
        file, _, anchor = target.partition("#")
        linked = (path.parent / file) if file else path
        assert linked.exists(), f"{page_name(path)}: link {target} names a missing file"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked.read_text()), f"{page_name(path)}: link {target} names no heading"
