"""Verification that cannot be fooled (issue 12, cases 4-6).

Every attack plants code that would create a canary file if it ever ran.
verify must report integrity FAIL (or PASS with the planted bytecode ignored)
and the canary must never appear: integrity is checked first, against the
regeneration of the recorded request by the installed optinv, and nothing from
the package runs unless it passes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from optinv.cli import main as cli_main
from optinv.codegen import compile_request
from optinv.codegen.package import load_module
from optinv.codegen.request import Request
from optinv.verify import verify_module


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTINV_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A freshly compiled, self-contained package (runtime bundled)."""
    return compile_request(Request(l_max=1, n_max=2), "vv", tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def package(pristine, tmp_path):
    copy = tmp_path / "pkg" / "vv"
    shutil.copytree(pristine, copy)
    return copy


def canary_code(canary: Path) -> str:
    return f"open({str(canary)!r}, 'w').write('planted code ran')\n"


def integrity_line(report):
    return next(r for r in report.results if r.property == "integrity")


def run_verify(path, **kw):
    return verify_module(path, max_examples=2, backends="c-f64", **kw)


def test_a_pristine_package_passes_integrity_first(package):
    report = run_verify(package)
    assert report.ok, report.report()
    assert report.results[0].property == "integrity" and report.results[0].status == "PASS"
    assert "byte-identical" in report.results[0].message


def test_planted_pycache_never_runs(package, tmp_path):
    """Case 4: an unchecked-hash .pyc in __pycache__ used to run in place of __init__.py (integrity PASS, exit 0)."""
    canary = tmp_path / "canary"
    evil = tmp_path / "evil.py"
    evil.write_text(canary_code(canary) + (package / "__init__.py").read_text())
    for tag_source in ("__init__", "_runtime"):
        target = package / "__pycache__" / f"{tag_source}.{sys.implementation.cache_tag}.pyc"
        target.parent.mkdir(exist_ok=True)
        py_compile.compile(str(evil), cfile=str(target), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    report = run_verify(package)
    assert report.ok, report.report()
    assert "ignored (never imported): __pycache__" in integrity_line(report).message
    assert not canary.exists()
    module = load_module(package)  # the public loader reads sources only, too
    assert module.K == 2 and not canary.exists()


def edit_kernels_c(package, canary):
    src = (package / "kernels.c").read_text()
    (package / "kernels.c").write_text(
        src + f'\n#include <stdio.h>\n__attribute__((constructor)) static void planted(void) '
              f'{{ FILE *f = fopen("{canary}", "w"); if (f) fclose(f); }}\n')


def edit_python_and_rehash(package, canary):
    init = package / "__init__.py"
    init.write_text(canary_code(canary) + init.read_text())
    meta = json.loads((package / "metadata.json").read_text())
    meta["sha256"]["__init__.py"] = hashlib.sha256(init.read_bytes()).hexdigest()
    (package / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def drop_the_sha256_key(package, canary):
    (package / "_runtime.py").write_text(canary_code(canary) + (package / "_runtime.py").read_text())
    meta = json.loads((package / "metadata.json").read_text())
    del meta["sha256"]
    (package / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def drop_one_sha256_entry(package, canary):
    (package / "_torch.py").write_text(canary_code(canary) + (package / "_torch.py").read_text())
    meta = json.loads((package / "metadata.json").read_text())
    del meta["sha256"]["_torch.py"]
    (package / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def symlinked_runtime(package, canary):
    evil = package.parent / "evil_runtime.py"
    evil.write_text(canary_code(canary) + (package / "_runtime.py").read_text())
    (package / "_runtime.py").unlink()
    (package / "_runtime.py").symlink_to(evil)


def extra_files(package, canary):
    (package / "helpers.py").write_text(canary_code(canary))
    (package / "evil.pth").write_text(f"import os; {canary_code(canary)}")


ATTACKS = {
    "edited kernels.c": (edit_kernels_c, "kernels.c differs"),
    "edited .py, hash recomputed": (edit_python_and_rehash, "__init__.py differs"),
    "sha256 key deleted": (drop_the_sha256_key, "_runtime.py differs"),
    "sha256 entry deleted": (drop_one_sha256_entry, "_torch.py differs"),
    "symlinked _runtime.py": (symlinked_runtime, "symbolic links"),
    "extra .py and .pth": (extra_files, "files optinv does not generate: evil.pth, helpers.py"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_tampering_fails_integrity_and_runs_nothing(attack, package, tmp_path, capsys):
    """Case 5: each of these ran planted code before; integrity now fails first and nothing runs."""
    tamper, expected = ATTACKS[attack]
    canary = tmp_path / "canary"
    tamper(package, canary)
    rc = cli_main(["verify", str(package), "--max-examples", "2", "--backends", "c-f64"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAIL  integrity" in out and expected in out, out
    assert "not run: integrity failed" in out
    assert not canary.exists(), "planted code ran"
    # asked only for other properties, integrity still runs first and still fails the run
    report = run_verify(package, properties="reference")
    assert not report.ok and integrity_line(report).status == "FAIL"
    assert not canary.exists()


METADATA_DEFECTS = {
    "not JSON": b"{ not json",
    "a list": b"[1, 2, 3]",
    "bad bytes": b'{"name": "\xff\xfe"}',
    "wrong type of request": json.dumps({"name": "vv", "request": [1], "signature": {}, "invariants": [],
                                         "D": 4, "K": 1}).encode(),
    "wrong type of K": json.dumps({"name": "vv", "request": {}, "signature": {}, "invariants": [],
                                   "D": 4, "K": "2"}).encode(),
    "name not an identifier": json.dumps({"name": "../x", "request": {}, "signature": {}, "invariants": [],
                                          "D": 4, "K": 2}).encode(),
    "invariants not strings": json.dumps({"name": "vv", "request": {}, "signature": {}, "invariants": [1],
                                          "D": 4, "K": 2}).encode(),
    "empty": b"",
}


@pytest.mark.parametrize("defect", list(METADATA_DEFECTS))
def test_malformed_metadata_exits_2_with_one_line(defect, package, capsys):
    """Case 6: these gave tracebacks."""
    (package / "metadata.json").write_bytes(METADATA_DEFECTS[defect])
    rc = cli_main(["verify", str(package), "--max-examples", "2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("optinv: error: PATH: ") and err.count("\n") == 1, err


def test_a_committed_name_means_the_committed_module_even_with_a_folder_of_that_name(tmp_path, monkeypatch, capsys):
    """The rough edge of `optinv verify NAME` with a folder NAME in the working directory: it says which it checks."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hop_l1_n2").mkdir()
    (tmp_path / "hop_l1_n2" / "metadata.json").write_text("[]")
    (tmp_path / "hop_l1_n2" / "__init__.py").write_text("")
    cli_main(["verify", "hop_l1_n2", "--max-examples", "1", "--backends", "c-f64", "--properties", "integrity"])
    out = capsys.readouterr().out
    assert "names the committed module" in out and "give ./hop_l1_n2" in out
    assert "generated/hop_l1_n2" in out.splitlines()[1]  # the header names the committed module's path
    rc = cli_main(["verify", "./hop_l1_n2"])  # the folder: its malformed metadata is reported
    assert rc == 2 and "must hold a JSON object" in capsys.readouterr().err
