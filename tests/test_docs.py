"""Every Python example in the README and docs/ runs as written.

The blocks of one page run in order in one namespace, as a reader pastes them. A block that
cannot run here (it needs a token, a GPU or hours) is preceded by an HTML comment saying why,
``<!-- not run: needs a D-Wave Leap token -->``, and is skipped.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_data_dir

PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])
BLOCK = re.compile(
    r"(?:<!--\s*not run:(?P<why>.*?)-->\s*\n)?^(?P<indent>[ \t]*)```python\n(?P<code>.*?)^(?P=indent)```",
    re.S | re.M,
)


def python_blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """(line, code, reason it is not run or None) for each ```python block of a page."""
    text = page.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start("code")) + 1, textwrap.dedent(match["code"]), match["why"])
        for match in BLOCK.finditer(text)
    ]


def test_every_skipped_block_says_why() -> None:
    for page in PAGES:
        for line, _, why in python_blocks(page):
            assert why is None or why.strip(), f"{page.name}:{line}: say why it is not run"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [(line, code) for line, code, why in python_blocks(page) if why is None]
    if not blocks:
        pytest.skip("no runnable Python example on this page")
    if any("../shared/data" in code for _, code in blocks) and shared_data_dir() is None:
        pytest.skip("benchmark instances not found: set QOPT_DATA")
    # Run where a reader's checkout would be, but in a scratch folder: what an example writes
    # (plots, checkpoints) stays out of the repository. Paths the docs name resolve as in a
    # checkout: examples/ inside it, ../shared/data beside it.
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "examples").symlink_to(REPO / "examples")
    data = shared_data_dir()
    if data is not None:
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared" / "data").symlink_to(data)
    monkeypatch.chdir(checkout)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # No account of the machine's (D-Wave, IBM) is read or written by an example.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for line, code in blocks:
        compiled = compile(code, f"{page.relative_to(REPO)}:{line}", "exec")
        exec(compiled, namespace)  # the docs' own code, as a reader runs it
    assert Path(os.getcwd()) == checkout, "an example changed the working directory"
