"""Every Python snippet of the README and of docs/*.md runs as written (issue 12, case 3).

A block starting ``# tests/<file>.py`` is a test file for the reader's project:
it is written out and run with pytest, and must pass.  Every other ``python``
block is executed (batches of ``100_000`` rows shrunk to ``1_000`` to stay fast).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks() -> list[tuple[str, str]]:
    found = []
    for doc in DOCUMENTS:
        for k, block in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)):
            found.append((f"{doc.relative_to(ROOT)}#{k}", block))
    return found


BLOCKS = python_blocks()
TEST_FILES = {block for _, block in BLOCKS if block.startswith("# tests/")}  # the same file in two documents runs once


def test_snippets_are_found():
    names = [name for name, _ in BLOCKS]
    assert any(n.startswith("README.md") for n in names) and any(n.startswith("docs/verify.md") for n in names)
    assert len(TEST_FILES) >= 1


@pytest.mark.parametrize("block", sorted(TEST_FILES), ids=lambda b: b.splitlines()[0][2:])
def test_documented_test_file_passes(block, tmp_path):
    (tmp_path / Path(block.splitlines()[0][2:]).name).write_text(block)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and "failed" not in res.stdout


@pytest.mark.parametrize("name,block", [(n, b) for n, b in BLOCKS if not b.startswith("# tests/")],
                         ids=[n for n, b in BLOCKS if not b.startswith("# tests/")])
def test_documented_snippet_runs(name, block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__snippet__"}
    exec(compile(block.replace("100_000", "1_000"), name, "exec"), namespace)
    if "hop.torch_invariants" in block:  # the README's worked example: the shapes it promises
        assert namespace["I"].shape == (1_000, 13) and namespace["gx"].shape == (1_000, 16)
        assert namespace["forces"].shape == (1_000, 16)
