"""The benchmark's peers compute what they claim (values and backward), not how fast.

* the sparse-polynomial C peer agrees with the NumPy reference evaluator
  (forward and vjp, float64 and float32, odd row counts, N = 0);
* HIP-HOP-NN's 13 invariants expand to 352 monomials, as the BACKGROUND states;
* the harness's einsum list for hippynn matches hippynn's own calc_invariants;
* the NumPy peer's vjp (no Jacobian) agrees with the reference gradient.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks/ folder is not installed

from benchmarks.peers import numpy_ref  # noqa: E402
from benchmarks.peers.sparse_poly import (  # noqa: E402
    HIPPYNN_13,
    HIPPYNN_SUBSETS,
    SparsePolyKernel,
    SparsePolynomialProgram,
    hippynn_einsums,
)
from optinv.algebra.evaluate import evaluate, gradient  # noqa: E402
from optinv.algebra.graphs import ContractionGraph  # noqa: E402
from optinv.algebra.select import select_basis  # noqa: E402
from optinv.algebra.signature import Signature  # noqa: E402

needs_cc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")


def _reference(einsums, sig, x, g):
    graphs = [ContractionGraph.from_einsum(e, sig) for e in einsums]
    return evaluate(graphs, x, sig), np.einsum("nk,nkd->nd", g, gradient(graphs, x, sig))


def test_hippynn_13_expand_to_352_monomials():
    prog = SparsePolynomialProgram.from_einsums(HIPPYNN_13, Signature.from_l_max(3))
    assert prog.n_monomials == 352
    assert prog.monomials_per_invariant == [1, 3, 6, 7, 10, 54, 7, 18, 13, 36, 24, 93, 80]
    assert prog.flops_forward > prog.n_monomials  # every monomial costs at least one flop


@needs_cc
@pytest.mark.parametrize("l_max,which", [(2, "optinv"), (3, "optinv"), (3, "hippynn")])
def test_sparse_poly_matches_reference(l_max, which):
    sig = Signature.from_l_max(l_max)
    einsums = list(HIPPYNN_13) if which == "hippynn" else select_basis(sig, 4).einsums
    kern = SparsePolyKernel(einsums, sig, name=f"test_{which}_l{l_max}")
    rng = np.random.default_rng(l_max)
    x = rng.standard_normal((203, sig.dim))  # not a multiple of the row block
    x[5] = 0.0  # a degenerate row
    g = rng.standard_normal((203, len(einsums)))
    ref, ref_vjp = _reference(einsums, sig, x, g)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        for threads in (1, 2):
            kern.set_num_threads(threads)
            val = kern.forward(x.astype(dtype))
            vj = kern.vjp(x.astype(dtype), g.astype(dtype))
            assert val.dtype == dtype and vj.dtype == dtype
            np.testing.assert_allclose(val, ref, rtol=tol, atol=tol * np.abs(ref).max())
            np.testing.assert_allclose(vj, ref_vjp, rtol=tol, atol=tol * np.abs(ref_vjp).max())
    assert kern.forward(np.zeros((0, sig.dim))).shape == (0, len(einsums))
    assert kern.vjp(np.zeros((0, sig.dim)), np.zeros((0, len(einsums)))).shape == (0, sig.dim)
    with pytest.raises(ValueError, match="x: expected shape"):
        kern.forward(np.zeros((3, sig.dim + 1)))


def test_numpy_peer_vjp_matches_gradient():
    sig = Signature.from_l_max(3)
    basis = select_basis(sig, 4)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((50, sig.dim))
    g = rng.standard_normal((50, len(basis)))
    _, ref_vjp = _reference(basis.einsums, sig, x, g)
    np.testing.assert_allclose(numpy_ref.vjp(basis.graphs, x, g, sig), ref_vjp, rtol=1e-12, atol=1e-12 * np.abs(ref_vjp).max())


@pytest.mark.parametrize("l_max,n_max", sorted(HIPPYNN_SUBSETS))
def test_hippynn_einsum_list_matches_calc_invariants(l_max, n_max):
    torch = pytest.importorskip("torch")
    tensors = pytest.importorskip("hippynn.layers.hiplayers.tensors")
    sig = Signature.from_l_max(l_max)
    x = np.random.default_rng(l_max * 10 + n_max).standard_normal((20, sig.dim))
    C = [tensors.cmaps[i].double() for i in range(4)]
    got = tensors.calc_invariants(l_max, n_max, torch.from_numpy(x), C).numpy()
    graphs = [ContractionGraph.from_einsum(e, sig) for e in hippynn_einsums(l_max, n_max)]
    np.testing.assert_allclose(got, evaluate(graphs, x, sig), rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_sparse_poly_cuda_source_compiles(tmp_path):
    import subprocess

    from benchmarks.peers.sparse_poly import emit_cuda

    prog = SparsePolynomialProgram.from_einsums(HIPPYNN_13, Signature.from_l_max(3))
    src = tmp_path / "sparse_poly.cu"
    src.write_text(emit_cuda(prog, "test"))
    res = subprocess.run(["nvcc", "-std=c++14", "-c", "-o", str(tmp_path / "sp.o"), str(src)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
