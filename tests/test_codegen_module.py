"""Generated modules: hippynn agreement, autograd, bad input, caching, regeneration, CLI."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from optinv.algebra.evaluate import evaluate
from optinv.algebra.signature import Signature
from optinv.cli import main as cli_main
from optinv.codegen import compile_module, compile_request, load_module
from optinv.codegen.catalog import HIPPYNN_INVARIANTS, committed_modules, generated_dir
from optinv.testing import as_graphs

from codegen_harness import has_nvcc

torch = pytest.importorskip("torch")


def mod(name):
    return importlib.import_module(f"optinv.generated.{name}")


# -- agreement with hippynn ---------------------------------------------------------------


@pytest.mark.parametrize("n_max", [1, 2, 3, 4])
@pytest.mark.parametrize("l_max", [1, 2, 3])
def test_hippynn_default_agrees_with_calc_invariants(l_max, n_max):
    """hippynn's smaller settings use subsets of its 13; our module computes all 13 at once."""
    pytest.importorskip("hippynn")
    from hippynn.layers.hiplayers import tensors as hip

    torch.manual_seed(l_max * 10 + n_max)
    x = torch.randn(257, 16, dtype=torch.float64)
    x[:, (l_max + 1) ** 2:] = 0.0  # hippynn reads only the first (l_max+1)^2 columns
    cmaps = [c.to(torch.float64) for c in hip.cmaps.values()]
    theirs = hip.calc_invariants(l_max, n_max, x[:, : (l_max + 1) ** 2], cmaps).numpy()
    ours = mod("hippynn_default").forward(x.numpy())
    # which of the 13 hippynn computes at this (l_max, n_max), in its order
    sig = Signature.from_l_max(3)
    graphs = as_graphs(HIPPYNN_INVARIANTS, sig)
    keep = [k for k, g in enumerate(graphs)
            if g.degree <= n_max and all(sig.tensor(lab).rank <= l_max for lab in g.labels)]
    assert theirs.shape[1] == len(keep)
    np.testing.assert_allclose(ours[:, keep], theirs, rtol=1e-11, atol=1e-11 * np.abs(theirs).max())


def test_hop_layer_is_a_drop_in_for_hippynn_layer():
    pytest.importorskip("hippynn")
    from hippynn.layers.hiplayers.tensors import HopInvariantLayer as HippynnLayer

    torch.manual_seed(0)
    feats = torch.randn(35, 16, dtype=torch.float64)
    theirs = HippynnLayer(4, 3).to(torch.float64)(feats)
    layer = mod("hippynn_default").HopInvariantLayer()
    ours = layer(feats)
    assert ours.shape == theirs.shape == (35, 13)
    # ours also takes leading dimensions (atoms x channels x coefficients)
    torch.testing.assert_close(layer(feats.reshape(5, 7, 16)), ours.reshape(5, 7, 13), rtol=0, atol=0)
    torch.testing.assert_close(ours, theirs, rtol=1e-11, atol=1e-9)


# -- autograd -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hop_l1_n2", "hop_l2_n4", "hop_l3_n4", "hippynn_default"])
def test_gradcheck_and_gradgradcheck(name):
    m = mod(name)
    torch.manual_seed(1)
    x = torch.randn(6, m.D, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m.torch_invariants, (x,))
    assert torch.autograd.gradgradcheck(m.torch_invariants, (x,))


def test_forces_train_through_double_backward():
    """A loss on forces (gradients) has parameter gradients equal to finite differences."""
    m = mod("hop_l3_n4")
    torch.manual_seed(2)
    x = torch.randn(4, m.D, dtype=torch.float64, requires_grad=True)
    w = torch.randn(m.K, dtype=torch.float64, requires_grad=True)

    def loss(weights):
        energy = (m.torch_invariants(x) * weights).sum()
        (forces,) = torch.autograd.grad(energy, x, create_graph=True)
        return (forces**2).sum()

    (dw,) = torch.autograd.grad(loss(w), w)
    h = 1e-6
    fd = torch.stack([(loss(w + h * e) - loss(w - h * e)) / (2 * h) for e in torch.eye(m.K, dtype=torch.float64)])
    torch.testing.assert_close(dw, fd.detach(), rtol=1e-5, atol=1e-6)


def test_third_derivative_is_refused():
    m = mod("hop_l2_n3")
    x = torch.randn(3, m.D, dtype=torch.float64, requires_grad=True)
    (gx,) = torch.autograd.grad(m.torch_invariants(x).sum(), x, create_graph=True)
    (hx,) = torch.autograd.grad((gx**2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(hx.sum(), x)


# -- bad input ----------------------------------------------------------------------------------


def test_bad_numpy_input_is_refused_clearly():
    m = mod("hop_l3_n4")
    x = np.zeros((4, 16))
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 16\)"):
        m.forward(np.zeros((4, 15)))
    with pytest.raises(ValueError, match="x: expected shape"):
        m.forward(np.zeros(16))
    for bad in (np.zeros((4, 16), dtype=np.int64), np.zeros((4, 16), dtype=np.float16),
                np.zeros((4, 16), dtype=np.complex128)):
        with pytest.raises(TypeError, match="x: expected dtype float32 or float64"):
            m.forward(bad)
    with pytest.raises(ValueError, match=r"g: expected shape \(4, 13\)"):
        m.vjp(x, np.zeros((4, 12)))
    with pytest.raises(ValueError, match="g: expected shape"):
        m.vjp(x, np.zeros((5, 13)))
    with pytest.raises(TypeError, match="g: expected dtype float64 to match x"):
        m.vjp(x, np.zeros((4, 13), dtype=np.float32))
    with pytest.raises(ValueError, match="out: expected shape"):
        m.forward(x, out=np.zeros((4, 12)))
    with pytest.raises(ValueError, match="out: expected a writeable C-contiguous"):
        m.forward(x, out=np.zeros((13, 4)).T)
    with pytest.raises(TypeError, match="NumPy array"):
        m.forward(torch.zeros(4, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="threads"):
        m.set_num_threads(-1)


def test_bad_torch_input_is_refused_clearly():
    m = mod("hop_l3_n4")
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 16\)"):
        m.torch_invariants(torch.zeros(3, 15))
    with pytest.raises(TypeError, match="x: expected dtype float32 or float64"):
        m.torch_invariants(torch.zeros(3, 16, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        m.torch_invariants(np.zeros((3, 16)))
    with pytest.raises(ValueError, match="device"):
        m.torch_invariants(torch.zeros(3, 16, device="meta"))


def test_non_contiguous_input_is_copied_and_out_is_filled_in_place():
    m = mod("hop_l3_n4")
    rng = np.random.default_rng(0)
    wide = rng.normal(size=(9, 32))
    x = wide[:, ::2]  # a strided view: copied, not refused (documented)
    assert not x.flags.c_contiguous
    out = np.empty((9, 13))
    res = m.forward(x, out=out)
    assert res is out
    np.testing.assert_array_equal(out, m.forward(np.ascontiguousarray(x)))
    xt = torch.from_numpy(wide)[:, ::2]
    np.testing.assert_allclose(m.torch_invariants(xt).numpy(), out, rtol=1e-14, atol=0)


def test_nan_stays_in_its_row_and_empty_batches_work():
    m = mod("hop_l4_n4")
    x = np.random.default_rng(1).normal(size=(11, m.D))
    x[3, 5] = np.nan
    x[8, 0] = np.inf
    y = m.forward(x)
    assert np.isnan(y[3]).any() and not np.isnan(np.delete(y, [3, 8], axis=0)).any()
    ok = np.delete(np.arange(11), [3, 8])
    np.testing.assert_allclose(y[ok], m.forward(x[ok]), rtol=0, atol=0)
    gx = m.vjp(x, np.ones((11, m.K)))
    assert np.isnan(gx[3]).any() and np.isfinite(gx[ok]).all()
    for dt in (np.float32, np.float64):
        assert m.forward(np.zeros((0, m.D), dt)).shape == (0, m.K)
        assert m.vjp(np.zeros((0, m.D), dt), np.zeros((0, m.K), dt)).shape == (0, m.D)
    assert m.torch_invariants(torch.zeros(0, m.D)).shape == (0, m.K)


# -- CUDA sources -------------------------------------------------------------------------------


@pytest.mark.skipif(not has_nvcc(), reason="nvcc is not on the PATH")
@pytest.mark.parametrize("name", sorted(committed_modules()))
def test_cuda_source_compiles_with_nvcc(name, tmp_path):
    src = generated_dir() / name / "kernels.cu"
    res = subprocess.run(["nvcc", "-std=c++14", "-c", str(src), "-o", str(tmp_path / "k.o")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]


# -- reproducibility -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(committed_modules()))
def test_committed_module_is_not_stale(name, tmp_path):
    """Regenerating from the catalog's request gives byte-identical files."""
    request = committed_modules()[name]
    fresh = compile_request(request, name, tmp_path)
    committed = generated_dir() / name
    names = sorted(p.name for p in fresh.iterdir())
    assert names == sorted(p.name for p in committed.iterdir() if p.name != "__pycache__")
    for fname in names:
        assert (fresh / fname).read_bytes() == (committed / fname).read_bytes(), (
            f"generated/{name}/{fname} is stale: run `optinv generate`")


def test_generation_is_deterministic_across_processes(tmp_path):
    """Hash randomisation must not change a byte (sympy sets, dict orders)."""
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = tmp_path / seed
        subprocess.run([sys.executable, "-m", "optinv", "compile", "--l-max", "3", "--n-max", "4", "--name", "m",
                        "--out", str(out)], check=True, env=env, capture_output=True)
        outs.append({p.name: p.read_bytes() for p in (out / "m").iterdir()})
    assert outs[0] == outs[1]


def test_metadata_records_request_hashes_and_flops():
    m = mod("hippynn_default")
    meta = m.METADATA
    assert meta["request"]["invariants"] == list(HIPPYNN_INVARIANTS)  # as given
    assert meta["K"] == 13 and meta["D"] == 16
    assert meta["basis"]["rank"] == 13 == meta["basis"]["bound"]
    assert set(meta["strategy_flops"]) == {"contraction", "polynomial"}
    assert meta["flops"]["forward"] == min(meta["strategy_flops"].values())
    import hashlib

    for fname, digest in meta["sha256"].items():
        assert hashlib.sha256((generated_dir() / "hippynn_default" / fname).read_bytes()).hexdigest() == digest


# -- build cache ---------------------------------------------------------------------------------


BUILD_SCRIPT = """
import sys, numpy as np
from optinv.codegen import load_module
m = load_module(sys.argv[1])
print(m.build())
print(float(m.forward(np.ones((3, m.D)))[0, 1]))
"""


def _run_build(path, cache):
    env = dict(os.environ, OPTINV_CACHE_DIR=str(cache))
    return subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT, str(path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_builds_and_corrupt_cache_are_safe(tmp_path):
    path = compile_module(["i,i->,v,v", "ij,ij->,q,q"], Signature.from_l_max(2), "cachetest", tmp_path / "src")
    cache = tmp_path / "cache"
    procs = [_run_build(path, cache) for _ in range(3)]
    results = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    libs = {r[0].splitlines()[0] for r in results}
    assert len(libs) == 1
    lib = Path(libs.pop())
    assert not list(lib.parent.glob("*.tmp"))  # no half-written files left behind
    value = results[0][0].splitlines()[1]
    lib.write_bytes(b"not a shared library")  # corrupt the cache entry
    p = _run_build(path, cache)
    out, err = p.communicate()
    assert p.returncode == 0, err
    assert out.splitlines()[1] == value
    assert lib.read_bytes()[:4] == b"\x7fELF"


# -- command line ---------------------------------------------------------------------------------


def test_compile_cli_keeps_given_order_and_builds(tmp_path, capsys):
    lines = ["ij,ik,jk->,two,two,two", "->,zero", "i,i->,one,one"]
    f = tmp_path / "inv.txt"
    f.write_text("\n".join(lines) + "\n")
    assert cli_main(["compile", "--invariants", str(f), "--name", "given", "--out", str(tmp_path), "--build"]) == 0
    out = capsys.readouterr().out
    assert "built C library:" in out
    m = load_module(tmp_path / "given")
    assert m.METADATA["request"]["invariants"] == lines
    x = np.random.default_rng(0).normal(size=(5, m.D))
    sig = Signature.from_l_max(2)
    np.testing.assert_allclose(m.forward(x), evaluate(as_graphs(lines, sig), x, sig), rtol=1e-13)


def test_compile_cli_from_basis_json(tmp_path):
    bj = tmp_path / "b.json"
    assert cli_main(["basis", "--l-max", "2", "--n-max", "4", "--json", str(bj), "--quiet"]) == 0
    assert cli_main(["compile", "--basis", str(bj), "--name", "fromjson", "--out", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "fromjson" / "metadata.json").read_text())
    assert meta["invariants"] == [d["einsum"] for d in json.loads(bj.read_text())["invariants"]]


@pytest.mark.parametrize("argv, message", [
    (["compile", "--l-max", "3", "--n-max", "4", "--name", "1bad"], "--name"),
    (["compile", "--l-max", "3", "--name", "x"], "exactly one of"),
    (["compile", "--l-max", "3", "--n-max", "0", "--name", "x"], "--n-max"),
    (["compile", "--basis", "/nonexistent.json", "--name", "x"], "--basis"),
    (["compile", "--invariants", "/nonexistent.txt", "--name", "x"], "--invariants"),
])
def test_compile_cli_bad_input_exits_2(argv, message, capsys, tmp_path):
    assert cli_main(argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_compile_cli_bad_einsum_line_exits_2(tmp_path, capsys):
    f = tmp_path / "bad.txt"
    f.write_text("i,i->,one,one\nij,ij->,two,three\n")
    assert cli_main(["compile", "--invariants", str(f), "--name", "x", "--out", str(tmp_path)]) == 2
    assert "line 2" in capsys.readouterr().err


def test_hop_module_compiles_any_setting_on_demand(tmp_path):
    from optinv.codegen import hop_module

    assert hop_module(3, 4).__name__ == "optinv.generated.hop_l3_n4"
    m = hop_module(2, 5, out_dir=tmp_path)  # not committed: compiled on demand
    sig = Signature.from_l_max(2)
    assert m.D == sig.dim == 9 and m.K == 6  # the README table: rank 6 = bound at (2, >=4)
    x = np.random.default_rng(4).normal(size=(7, m.D))
    np.testing.assert_allclose(m.forward(x), evaluate(as_graphs(m.EINSUMS, sig), x, sig), rtol=1e-12)
    layer = m.HopInvariantLayer()
    assert layer(torch.from_numpy(x)).shape == (7, 6)
    assert hop_module(2, 5, out_dir=tmp_path) is m  # compiled once, loaded once


def test_pseudoscalars_keep_the_orientation_written(tmp_path):
    """eps fixes an invariant only up to sign: a given string compiles to exactly that sign."""
    sig = Signature.parse("a:1,b:1,c:1", "SO3")
    given = ["i,j,k,ijk->,a,b,c,eps", "i,j,k,jik->,a,b,c,eps", "i,j,k,ijk->,b,a,c,eps", "i,i->,a,b"]
    m = load_module(compile_module(given, sig, "oriented", tmp_path))
    x = np.random.default_rng(9).normal(size=(6, 9))
    a, b, c = x[:, :3], x[:, 3:6], x[:, 6:]
    triple = np.einsum("ni,ni->n", a, np.cross(b, c))
    np.testing.assert_allclose(m.forward(x)[:, :3], np.stack([triple, -triple, -triple], axis=1), rtol=1e-13)
    assert m.METADATA["pseudoscalar"] == [True, True, True, False]
    # the canonical strings in the metadata carry the orientation too
    np.testing.assert_allclose(evaluate(as_graphs(m.EINSUMS, sig), x, sig), m.forward(x), rtol=1e-13)


def test_odd_axial_contraction_is_refused_under_o3():
    from optinv.algebra.errors import OptinvError
    from optinv.algebra.graphs import ContractionGraph

    sig = Signature.parse("w:1:axial,v:1")
    assert ContractionGraph.from_einsum("i,i->,w,w", sig).parity(sig) == 1
    with pytest.raises(OptinvError, match="pseudoscalar"):
        ContractionGraph.from_einsum("i,i->,w,v", sig)


def test_regenerating_in_place_never_runs_a_stale_library(tmp_path):
    """Recompiling into the same folder imports afresh; a stale module object refuses to run."""
    sig = Signature.from_l_max(2)
    old = load_module(compile_module(["i,i->,v,v"], sig, "m", tmp_path))
    new = load_module(compile_module(["ij,ij->,q,q", "i,i->,v,v"], sig, "m", tmp_path))
    assert new is not old and new.K == 2
    x = np.random.default_rng(0).normal(size=(40, sig.dim))
    np.testing.assert_allclose(new.forward(x), evaluate(as_graphs(new.EINSUMS, sig), x, sig), rtol=1e-13)
    with pytest.raises(RuntimeError, match="regenerated after import"):
        old.forward(x)  # its sources changed on disk: refused, not a buffer overrun


def test_out_must_not_alias_inputs_and_threads_are_checked():
    m = mod("hop_l2_n4")
    x = np.random.default_rng(0).normal(size=(5, m.D))
    with pytest.raises(ValueError, match="overlap"):
        m.vjp(x, np.ones((5, m.K)), out=x)
    for bad in (-3, "a", 1.5):
        with pytest.raises(ValueError, match="threads"):
            m.forward(x, threads=bad)


def test_hop_layer_takes_hippynns_constructor_arguments():
    m = mod("hop_l3_n4")
    layer = m.HopInvariantLayer(4, 3)  # hippynn: HopInvariantLayer(n_max, l_max)
    assert layer.n_invariants == 13 and (layer.n_max, layer.l_max) == (4, 3)
    with pytest.raises(ValueError, match="n_max"):
        m.HopInvariantLayer(3, 3)
    with pytest.raises(ValueError, match="l_max"):
        m.HopInvariantLayer(4, 2)
    assert mod("hippynn_default").HopInvariantLayer(4, 3).n_invariants == 13


def test_hippynns_three_factor_set_is_not_maximal():
    """hippynn's (l_max=3, n_max=3) uses 7 of its 13; the maximum with three factors is 8 (v.q.t is missing)."""
    from optinv.algebra.select import check_invariants, select_basis

    sig = Signature.from_l_max(3)
    graphs = as_graphs(HIPPYNN_INVARIANTS, sig)
    theirs = [g.einsum for g in graphs if g.degree <= 3]
    assert len(theirs) == 7 and check_invariants(theirs, sig).rank == 7
    ours = select_basis(sig, 3)
    assert ours.rank == 8 and ours.exhausted
    assert "i,jk,ijk->,v,q,t" in ours.einsums and "i,jk,ijk->,v,q,t" not in theirs
