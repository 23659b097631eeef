"""Bad input that used to crash or run for minutes without a word (issue 12, cases 9-13)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from optinv.cli import main
from optinv.codegen.runtime.native import MAX_THREADS
from optinv.generated import hop_l1_n2 as m

X = np.random.default_rng(0).normal(size=(5, m.D))


@pytest.mark.parametrize("bad", [33000, 100000, 2**31, 2**63, -1, 1.7, 2.0, "3", True, np.bool_(True), None, [2]])
def test_bad_thread_counts_are_refused_before_any_call(bad):
    """Case 9: 33000 aborted the process (libgomp), 100000 segfaulted, 2**31 wrapped, 1.7 and '3' were accepted."""
    if bad is not None:
        with pytest.raises(ValueError, match="threads: expected an integer in 0..1024"):
            m.forward(X, threads=bad)
    with pytest.raises(ValueError, match="threads"):
        m.set_num_threads(bad)


@pytest.mark.parametrize("good", [0, 1, 2, np.int64(2), np.int32(1), np.uint8(3)])
def test_numpy_and_python_integers_are_accepted(good):
    ref = m.forward(X)
    np.testing.assert_array_equal(m.forward(X, threads=good), ref)
    m.set_num_threads(good)
    np.testing.assert_array_equal(m.forward(X), ref)
    m.set_num_threads(0)


def test_the_largest_thread_count_runs_without_crashing():
    code = (f"import numpy as np; from optinv.generated import hop_l1_n2 as m; "
            f"print(m.forward(np.ones((4, m.D)), threads={MAX_THREADS})[0, 1])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "3.0", res.stderr[-2000:]


@pytest.mark.parametrize("argv,hint", [
    (["ace", "--n-rad", "1000", "--l-max", "3", "--nu-max", "4"], "try --n-rad"),
    (["ace", "--table", "--n-rad", "1000"], "try --n-rad"),
    (["basis", "--tensors", "a:3", "--n-max", "100"], "start there"),
    (["check", "--n-max", "100", "FILE"], "start there"),
    (["table", "--n-max", "40"], "start there"),
    (["compile", "--l-max", "1", "--n-max", "100", "--name", "big"], "start there"),
])
def test_out_of_reach_work_is_refused_up_front(argv, hint, capsys, tmp_path):
    """Case 10: these ran for minutes without a word."""
    argv = [str(tmp_path / "f.txt") if a == "FILE" else a for a in argv]
    (tmp_path / "f.txt").write_text("i,i->,v,v\n")
    start = time.perf_counter()
    rc = main(argv + (["--out", str(tmp_path)] if argv[0] == "compile" else []))
    err = capsys.readouterr().err
    assert rc == 2 and time.perf_counter() - start < 5
    assert err.count("\n") == 1 and "out of reach" in err and hint in err, err


def test_compile_shows_progress(capsys, tmp_path):
    rc = main(["compile", "--l-max", "1", "--n-max", "2", "--name", "prog", "--out", str(tmp_path), "--build"])
    err = capsys.readouterr().err
    assert rc == 0 and "planning and generating prog" in err and "compiling the C library of prog" in err


@pytest.mark.parametrize("name", ["numpy", "json", "os", "optinv", "torch"])
def test_compile_refuses_names_of_importable_modules(name, capsys, tmp_path):
    """Case 12: --name numpy wrote a package that shadows NumPy in that directory."""
    rc = main(["compile", "--l-max", "1", "--n-max", "2", "--name", name, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "importable module" in err and not (tmp_path / name).exists()


def test_compile_warns_on_a_dependent_list_and_strict_refuses(capsys, tmp_path):
    """Case 13: tr(q^4) is a function of tr(q^2) and tr(q^3) (as `optinv check` says)."""
    listing = tmp_path / "dep.txt"
    listing.write_text("i,i->,v,v\nij,ij->,q,q\nij,jk,ki->,q,q,q\nij,jk,kl,li->,q,q,q,q\n")
    base = ["compile", "--invariants", str(listing), "--l-max", "2", "--name", "dep", "--out", str(tmp_path)]
    assert main(base) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "1 of 4 entries are functions of earlier ones (lines 4" in err
    assert main(base + ["--strict"]) == 2
    assert "--strict refuses" in capsys.readouterr().err
    independent = tmp_path / "ind.txt"
    independent.write_text("i,i->,v,v\nij,ij->,q,q\n")
    assert main(["compile", "--invariants", str(independent), "--l-max", "2", "--name", "ind", "--out",
                 str(tmp_path), "--strict"]) == 0
    assert "warning" not in capsys.readouterr().err
