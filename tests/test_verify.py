"""``optinv verify``: passes on every committed module, and fails, naming the property, on broken ones."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from optinv.cli import main as cli_main
from optinv.codegen import compile_request
from optinv.codegen.catalog import committed_modules, generated_dir
from optinv.codegen.targets.base import cuda_unavailable
from optinv.verify import PROPERTIES, central_weights, verify_module

COMMITTED = sorted(committed_modules())


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Edited C sources rebuild (the cache key includes the source); keep those builds out of ~/.cache."""
    monkeypatch.setenv("OPTINV_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "optinv-cache"))


def run_cli(capsys, *argv) -> tuple[int, str]:
    rc = cli_main(["verify", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out + out.err


def status_of(output: str, prop: str, backend: str | None = None) -> set[str]:
    """Statuses printed for one property (optionally one backend)."""
    what = re.escape(prop) + (r" \[" + re.escape(backend) + r"\]" if backend else r"(?: \[[^\]]+\])?")
    return set(re.findall(r"^(PASS|FAIL|SKIP)\s+" + what + r"\s", output, flags=re.M))


# -- passes on every committed module -------------------------------------------------------


@pytest.mark.parametrize("name", COMMITTED)
def test_verify_passes_on_committed_module(name):
    report = verify_module(name, max_examples=8, seed=1, backends="c,torch")
    assert report.ok, report.report()
    assert {r.property for r in report.results} == set(PROPERTIES)
    assert all(r.status in ("PASS", "SKIP") for r in report.results)


def test_verify_cli_defaults_on_hop_l3_n4(capsys, tmp_path):
    """The acceptance run: default settings, every backend, a JSON report."""
    report_path = tmp_path / "report.json"
    rc, out = run_cli(capsys, "hop_l3_n4", "--json", report_path)
    assert rc == 0, out
    for prop in PROPERTIES:
        assert status_of(out, prop) >= {"PASS"}, out
    data = json.loads(report_path.read_text())
    assert data["ok"] is True and data["module"] == "hop_l3_n4" and data["max_examples"] == 100
    assert {r["property"] for r in data["results"]} == set(PROPERTIES)
    c64 = next(r for r in data["results"] if r["property"] == "reference" and r["backend"] == "c-f64")
    assert c64["status"] == "PASS" and c64["examples"] == 100
    # CUDA is reported as skipped, never as passed, without a GPU
    cuda = [r for r in data["results"] if r["backend"] in ("cuda-f64", "cuda-f32")]  # not cuda-host (runs on CPU)
    assert len(cuda) == 6
    if cuda_unavailable():
        assert all(r["status"] == "SKIP" and "no GPU" in r["message"] for r in cuda)


def test_verify_accepts_a_directory_and_is_reproducible(tmp_path):
    path = compile_request({"l_max": 2, "group": "O3", "n_max": 3}, "mine", tmp_path)
    runs = [verify_module(path, max_examples=10, seed=7, backends="c-f64").to_dict() for _ in range(2)]
    for run in runs:
        assert run["ok"] and run["path"] == str(path.resolve())
        for r in run["results"]:
            r.pop("seconds")
        run.pop("seconds")
    assert runs[0] == runs[1]


def test_verify_pseudoscalars_and_axial_tensors(tmp_path):
    """Reflections flip pseudoscalars (SO3 with epsilon) and respect axial parities."""
    so3 = compile_request({"tensors": "a:1,b:1,q:2", "group": "SO3",
                           "invariants": ["i,i->,a,a", "i,j,ij->,a,b,q", "i,j,kl,ijk,l->,a,b,q,eps,a"]},
                          "so3_pseudo", tmp_path)
    report = verify_module(so3, max_examples=15, backends="c-f64", properties="invariance,reference,derivatives")
    assert report.ok, report.report()
    assert "1 output changing sign" in report.results[0].message
    # w is axial: w.q.v changes sign under reflections (an SO(3) pseudoscalar without any eps)
    axial = compile_request({"tensors": "w:1:axial,v:1,q:2", "group": "SO3",
                             "invariants": ["i,i->,w,w", "i,j,ij->,w,w,q", "i,j,ij->,w,v,q"]}, "axial", tmp_path)
    report = verify_module(axial, max_examples=15, backends="c-f64", properties="invariance")
    assert report.ok, report.report()
    assert "1 output changing sign" in report.results[0].message


def test_bad_arguments_are_one_line_errors(capsys, tmp_path):
    rc, out = run_cli(capsys, tmp_path / "nowhere")
    assert rc == 2 and out.count("\n") == 1 and "optinv: error: PATH" in out
    rc, out = run_cli(capsys, "hop_l1_n2", "--backends", "fortran")
    assert rc == 2 and "--backends" in out
    rc, out = run_cli(capsys, "hop_l1_n2", "--max-examples", "0")
    assert rc == 2 and "--max-examples" in out
    rc, out = run_cli(capsys, "hop_l1_n2", "--properties", "speed")
    assert rc == 2 and "--properties" in out


def test_central_weights_are_exact_for_polynomials():
    import numpy as np

    for m in (1, 2, 3):
        w = central_weights(m)
        t = np.arange(-m, m + 1, dtype=float)
        for p in range(2 * m + 1):
            assert np.isclose(w @ t**p, 1.0 if p == 1 else 0.0, atol=1e-12), (m, p)


# -- the verifier can fail --------------------------------------------------------------------


def broken_copy(tmp_path: Path, edit, name: str = "hop_l3_n4") -> Path:
    """A copy of a committed module with ``edit`` applied to its kernels.c (hashes left as they were)."""
    target = tmp_path / name
    shutil.copytree(generated_dir() / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    source = target / "kernels.c"
    before = source.read_text()
    after = edit(before)
    assert after != before, "the mutation did not apply"
    source.write_text(after)
    return target


def in_blocks(kernel: str, edit):
    """Apply ``edit`` to the body of ``<kernel>_block_f32`` and ``_f64`` only."""

    def apply(text: str) -> str:
        for suffix in ("f32", "f64"):
            start = text.index(f" void {kernel}_block_{suffix}(")
            end = text.index("\n}\n", start)
            text = text[:start] + edit(text[start:end]) + text[end:]
        return text

    return apply


def _swap_columns(text: str, a: int, b: int) -> str:
    """Swap which transposed vector feeds input columns ``a`` and ``b`` in every block."""
    pattern = re.compile(rf"const real_v x({a}|{b}) = (x_\d+_\d+);")

    def block(body: str) -> str:
        found = dict(pattern.findall(body))
        if set(found) != {str(a), str(b)}:
            return body
        return pattern.sub(lambda m: f"const real_v x{m[1]} = {found[str(a) if m[1] == str(b) else str(b)]};", body)

    return "\n}\n".join(block(part) for part in text.split("\n}\n"))


MUTATIONS = {
    # a wrong coefficient in the forward kernel: |q|^2 weighs its off-diagonal squares 3 instead of 2
    "wrong_coefficient": (in_blocks("forward", lambda b: b.replace(" 2*(x5*x5", " 3*(x5*x5", 1)),
                          {"invariance", "reference"}),
    # a swapped index: every kernel reads v_x where q_00 is and vice versa (after the in-register transpose)
    "swapped_index": (lambda t: _swap_columns(t, 1, 4), {"invariance", "reference"}),
    # a sign flipped in the VJP (first column); the forward is intact
    "vjp_sign": (in_blocks("vjp", lambda b: re.sub(r"real_v out_0_0 = (.*?);", r"real_v out_0_0 = -(\1);", b)),
                 {"derivatives"}),
    # a sign flipped in the g-weighted HVP only: caught by differences of the VJP
    "hvp_sign": (in_blocks("hvp", lambda b: re.sub(r"real_v out_0_3 = (.*?);", r"real_v out_0_3 = -(\1);", b)),
                 {"derivatives"}),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_verify_fails_on_broken_kernels(mutation, tmp_path, capsys):
    edit, targeted = MUTATIONS[mutation]
    path = broken_copy(tmp_path, edit)
    json_path = tmp_path / "report.json"
    rc, out = run_cli(capsys, path, "--max-examples", 20, "--backends", "c-f64", "--json", json_path,
                      "--run-unverified")
    assert rc == 1, out
    for prop in targeted:
        assert status_of(out, prop, "c-f64") == {"FAIL"}, out
    assert status_of(out, "integrity") == {"FAIL"} and "kernels.c differs from the regenerated file" in out
    if mutation in ("vjp_sign", "hvp_sign"):  # the forward is untouched: only the derivatives are blamed
        assert status_of(out, "invariance") == {"PASS"} and status_of(out, "reference") == {"PASS"}, out
        assert ("vjp column 0" if mutation == "vjp_sign" else "hvp column 3") in out
    if mutation == "wrong_coefficient":  # the message points at the broken output
        assert "output 2 (ij,ij->,q,q)" in out
    assert "shrunk counterexample: x=" in out
    data = json.loads(json_path.read_text())
    assert data["ok"] is False
    assert targeted <= {r["property"] for r in data["results"] if r["status"] == "FAIL"}
    failed = next(r for r in data["results"] if r["status"] == "FAIL" and r["property"] in targeted)
    assert failed["counterexample"]["x"]  # the shrunk rows, JSON-serialised


def test_verify_failure_is_reproducible(tmp_path):
    path = broken_copy(tmp_path, MUTATIONS["wrong_coefficient"][0])
    runs = [verify_module(path, max_examples=20, seed=3, backends="c-f64", properties="reference",
                          run_unverified=True).results[1] for _ in range(2)]
    assert runs[0].counterexample["x"].tolist() == runs[1].counterexample["x"].tolist()
    assert runs[0].message == runs[1].message


def test_verify_fails_on_an_edited_source(tmp_path, capsys):
    """A harmless-looking edit: every numeric property passes, integrity does not."""
    path = broken_copy(tmp_path, lambda t: t.replace("Do not edit", "Edited anyway", 1), name="hop_l2_n4")
    rc, out = run_cli(capsys, path, "--max-examples", 10, "--backends", "c-f64", "--run-unverified")
    assert rc == 1, out
    assert status_of(out, "integrity") == {"FAIL"}
    assert "kernels.c differs from the regenerated file" in out
    for prop in ("invariance", "reference", "derivatives", "rank"):
        assert status_of(out, prop) == {"PASS"}, out
    rc, out = run_cli(capsys, path, "--max-examples", 10, "--backends", "c-f64")  # by default nothing runs
    assert rc == 1 and status_of(out, "rank") == {"SKIP"}, out


def hop_l3_n4_invariants() -> list[str]:
    return json.loads((generated_dir() / "hop_l3_n4" / "metadata.json").read_text())["invariants"]


def test_verify_fails_when_a_dropped_invariant_leaves_a_set_claimed_complete(tmp_path, capsys):
    request = {"l_max": 3, "group": "O3", "invariants": hop_l3_n4_invariants()[:-1]}
    path = compile_request(request, "dropped", tmp_path)
    # honest metadata (incomplete) passes the rank property
    rc, out = run_cli(capsys, path, "--max-examples", 10, "--backends", "c-f64", "--properties", "rank,integrity")
    assert rc == 0, out
    assert "not complete, as the metadata states" in out
    # the same kernels claimed complete: the rank property fails
    meta_path = path / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["basis"].update(complete=True, rank=13)
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    rc, out = run_cli(capsys, path, "--max-examples", 10, "--backends", "c-f64", "--run-unverified")
    assert rc == 1, out
    assert status_of(out, "rank") == {"FAIL"} and status_of(out, "integrity") == {"FAIL"}
    assert "metadata claims a complete set but the rank is 12 < bound 13" in out
    assert status_of(out, "reference") == {"PASS"}


def test_verify_fails_on_a_dependent_invariant(tmp_path, capsys):
    """tr(q^4) is a function of tr(q^2) and tr(q^3): 14 outputs of rank 13."""
    request = {"l_max": 3, "group": "O3", "invariants": hop_l3_n4_invariants() + ["ij,jk,kl,li->,q,q,q,q"]}
    path = compile_request(request, "dependent", tmp_path)
    rc, out = run_cli(capsys, path, "--max-examples", 10, "--backends", "c-f64")
    assert rc == 1, out
    assert status_of(out, "rank") == {"FAIL"}
    assert "Jacobian rank 13 < 14 outputs" in out and "output 13 (" in out
    for prop in ("invariance", "reference", "derivatives", "integrity"):
        assert status_of(out, prop) == {"PASS"}, out


def test_verify_catches_a_dropped_invariant_in_a_module_requested_by_n_max(tmp_path, capsys):
    """A module made for (l_max=3, n_max=4) promises the maximal rank 13; with one output dropped it fails."""
    path = compile_request({"l_max": 3, "group": "O3", "invariants": hop_l3_n4_invariants()[:-1]}, "dropped", tmp_path)
    meta_path = path / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["request"] = {"group": "O3", "l_max": 3, "n_max": 4}  # as if cut out of hop_l3_n4
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    rc, out = run_cli(capsys, path, "--max-examples", 5, "--backends", "c-f64", "--properties", "rank",
                      "--run-unverified")
    assert rc == 1, out
    assert status_of(out, "rank") == {"FAIL"}
    assert "promises the maximal rank 13" in out and "an invariant is missing" in out


def test_edited_python_code_is_not_imported(tmp_path, capsys):
    """An edited __init__.py could run anything: verify reports integrity and imports nothing."""
    path = compile_request({"l_max": 1, "group": "O3", "n_max": 2}, "edited_py", tmp_path)
    marker = tmp_path / "imported.txt"
    init = path / "__init__.py"
    init.write_text(init.read_text() + f"\nopen({str(marker)!r}, 'w').write('ran')\n")
    rc, out = run_cli(capsys, path, "--max-examples", 3, "--backends", "c-f64")
    assert rc == 1, out
    assert status_of(out, "integrity") == {"FAIL"} and "__init__.py" in out
    assert status_of(out, "invariance") == {"SKIP"} and status_of(out, "rank") == {"SKIP"}
    assert not marker.exists()
