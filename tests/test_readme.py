"""The README's example test for model authors runs and passes, as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_test_passes(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (example,) = [b for b in blocks if b.startswith("# tests/test_descriptor.py")]
    (tmp_path / "test_descriptor.py").write_text(example)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "2 passed" in res.stdout


def test_readme_python_snippet_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (snippet,) = [b for b in blocks if "hop.torch_invariants" in b]
    namespace: dict = {}
    exec(compile(snippet.replace("100_000", "1_000"), "README snippet", "exec"), namespace)
    assert namespace["I"].shape == (1_000, 13) and namespace["gx"].shape == (1_000, 16)
    assert namespace["forces"].shape == (1_000, 16)
