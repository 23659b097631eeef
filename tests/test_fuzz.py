"""Hypothesis fuzzing of the CLI and of a module's API, bounded in time (issue 12).

Whatever the input, the CLI exits 0, 1 or 2 with at most a one-line error (no
traceback), and the module API returns a correct result or raises TypeError or
ValueError with a message naming the argument.  Sizes stay small so each test
takes a few seconds.
"""

from __future__ import annotations

import contextlib
import io
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from optinv.cli import main
from optinv.generated import hop_l1_n2 as m

FUZZ = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

SMALL_INT = st.integers(-2, 3).map(str)
TOKENS = st.one_of(
    st.sampled_from(["--l-max", "--n-max", "--tensors", "--group", "--seed", "--json", "--quiet", "--strict",
                     "--name", "--out", "--targets", "--invariants", "--max-examples", "--backends", "--properties",
                     "--n-rad", "--nu-max", "--l-min", "--n-min", "--help-nope", "-"]),
    SMALL_INT,
    st.sampled_from(["a:1", "s:0,v:1", "v:1:axial", "a:x", "o3", "SO3", "U1", "c-f64", "c", "reference", "rank",
                     "speed", "i,i->,v,v", "hop_l1_n2", "mod", "numpy", "../x", "", " ", "\x00", "é"]),
    st.text(max_size=6),
)
COMMANDS = st.sampled_from(["basis", "check", "table", "compile", "verify", "ace"])


@pytest.fixture(autouse=True)
def sandbox(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPTINV_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "list.txt").write_text("i,i->,v,v\n->,s\n")


def bounded(argv: list[str]) -> list[str]:
    """Keep every run small: caps on sizes, no --build, few examples."""
    out = []
    for i, a in enumerate(argv):
        if i and argv[i - 1] in ("--l-max", "--n-max", "--n-rad", "--nu-max", "--max-examples") and a.isdigit():
            a = str(min(int(a), 2))
        out.append(a)
    if out and out[0] == "table":
        out += ["--l-max", "1", "--n-max", "2"]
    if out and out[0] == "verify":
        out += ["--max-examples", "1", "--backends", "c-f64"]
    if out and out[0] == "ace" and "--table" not in out:
        out += ["--n-rad", "1", "--l-max", "1", "--nu-max", "2"]
    return out


@FUZZ
@given(command=COMMANDS, rest=st.lists(TOKENS, max_size=6), file_first=st.booleans())
def test_cli_never_tracebacks(command, rest, file_first):
    argv = bounded([command, *(["list.txt"] if file_first and command == "check" else []), *rest])
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
            rc = exc.code
    assert rc in (0, 1, 2), (argv, rc, err.getvalue()[-2000:])
    assert "Traceback" not in err.getvalue(), (argv, err.getvalue()[-2000:])
    if rc == 2 and "optinv: error:" in err.getvalue():
        assert err.getvalue().count("optinv: error:") == 1 and err.getvalue().rstrip().count("\n") <= 1 + \
            err.getvalue().count("[") + err.getvalue().count("warning"), (argv, err.getvalue())
    assert time.perf_counter() - start < 30, argv


DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int32, np.complex128, np.bool_])
SHAPES = st.one_of(st.tuples(st.integers(0, 4), st.integers(0, 6)), st.tuples(st.integers(0, 3)),
                   st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 4)), st.just(()))
ARRAYS = st.one_of(
    DTYPES.flatmap(lambda dt: SHAPES.flatmap(lambda sh: arrays(dt, sh))),
    st.lists(st.floats(allow_nan=True), max_size=8), st.none(), st.text(max_size=3), st.floats(), st.integers())
THREADS = st.one_of(st.none(), st.integers(-3, 2**40), st.floats(allow_nan=True), st.text(max_size=2), st.booleans())


def expected(op, x, g, u):
    """The right answer for float inputs of the right shapes (hop_l1_n2: I = [s, v.v])."""
    x = np.asarray(x, dtype=np.float64)
    jac = np.zeros((len(x), 2, 4))
    jac[:, 0, 0] = 1.0
    jac[:, 1, 1:] = 2 * x[:, 1:]
    if op == "forward":
        return np.stack([x[:, 0], (x[:, 1:] ** 2).sum(1)], axis=1)
    if op == "vjp":
        return np.einsum("nk,nkd->nd", g, jac)
    if op == "jvp":
        return np.einsum("nkd,nd->nk", jac, u)
    out = np.zeros_like(x)
    out[:, 1:] = 2 * g[:, 1:2] * u[:, 1:]
    return out


@FUZZ
@given(op=st.sampled_from(["forward", "vjp", "jvp", "hvp"]), x=ARRAYS, g=ARRAYS, u=ARRAYS, threads=THREADS,
       out=st.one_of(st.none(), ARRAYS))
def test_module_api_is_right_or_refuses_clearly(op, x, g, u, threads, out):
    args = {"forward": (x,), "vjp": (x, g), "jvp": (x, u), "hvp": (x, g, u)}[op]
    try:
        result = getattr(m, op)(*args, out=out, threads=threads)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        assert message and "\n" not in message
        assert message.split(":")[0] in ("x", "g", "u", "out", "threads"), message
        return
    xs = np.asarray(x)
    assert xs.dtype in (np.float32, np.float64) and xs.ndim == 2 and xs.shape[1] == m.D
    ref = expected(op, xs, np.asarray(g, dtype=np.float64) if op in ("vjp", "hvp") else None,
                   np.asarray(u, dtype=np.float64) if op in ("jvp", "hvp") else None)
    tol = 1e-5 if xs.dtype == np.float32 else 1e-12
    with np.errstate(all="ignore"):
        scale = np.maximum(np.abs(ref), 1.0)
        finite = np.isfinite(ref) & np.isfinite(result)
        assert np.all(np.abs(result - ref)[finite] <= tol * 10 * scale[finite] * (1 + np.abs(xs).max() ** 2))
    if out is not None:
        assert result is out
