"""ACE example (examples/ace): descriptors from atoms, forces, datasets.

Fast (a few seconds); skipped cleanly when ASE / torch (or tblite, for its own test) are missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ase = pytest.importorskip("ase")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ase import Atoms  # noqa: E402
from ase.build import molecule  # noqa: E402

from examples.ace.backends import PolynomialBackend, TorchEinsumBackend  # noqa: E402
from examples.ace.data import cu_structure, methane_geometry  # noqa: E402
from examples.ace.descriptors import (  # noqa: E402
    ACEDescriptor,
    Structures,
    energy_and_forces,
    energy_and_forces_from_base,
)
from examples.ace.fit import ElementMLP  # noqa: E402
from examples.ace.radial import unit_tensor_coefficients  # noqa: E402
from examples.ace.sets import independent_set, linear_ace_set  # noqa: E402
from optinv.algebra.modular import pivot_columns  # noqa: E402
from optinv.algebra.cartesian import random_rotation, tensor_from_coefficients  # noqa: E402
from optinv.algebra.evaluate import evaluate  # noqa: E402

SETTING = (2, 2, 3)


@pytest.fixture(scope="module")
def sets():
    return {"linear": linear_ace_set(*SETTING), "independent": independent_set(*SETTING)}


def _methane(seed=0) -> Atoms:
    return Atoms("CH4", positions=methane_geometry(np.random.default_rng(seed)))


def _cu(seed=0) -> Atoms:
    return cu_structure(np.random.default_rng(seed), size=1)  # 4-atom periodic cell: fast, many images


SYSTEMS = [(_methane, 3.5, [1, 6]), (_cu, 4.0, [29])]


# --------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize("l", range(5))
def test_unit_tensor_is_traceless_part_in_engine_convention(l):
    rng = np.random.default_rng(l)
    u = rng.normal(size=(6, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    coeffs = unit_tensor_coefficients(torch.as_tensor(u), l).numpy()
    T = tensor_from_coefficients(coeffs, l)  # T = C @ c with the engine's integer map
    outer = np.ones(6)
    for _ in range(l):
        outer = np.einsum("n...,ni->n...i", outer, u)
    if l >= 2:
        assert np.allclose(np.einsum("nii...->n...", T), 0.0, atol=1e-12)  # traceless
    # the traceless part is the orthogonal projection: T(u) - u^(x)l is orthogonal to every
    # symmetric traceless tensor
    other = tensor_from_coefficients(rng.normal(size=(6, 2 * l + 1)), l)
    axes = tuple(range(1, l + 1))
    assert np.allclose(np.sum((T - outer) * other, axis=axes), 0.0, atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "independent"])
def test_backends_agree_with_engine_reference(sets, kind):
    ds = sets[kind]
    x = np.random.default_rng(3).normal(size=(9, ds.signature.dim))
    Vc = evaluate(ds.connected, x, ds.signature)
    ref = np.stack([np.prod(Vc[:, list(p)], axis=1) for p in ds.products], axis=1)
    for backend in (PolynomialBackend(ds), TorchEinsumBackend(ds)):
        got = backend(torch.as_tensor(x)).numpy()
        assert np.allclose(got, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


def test_linear_counts_match_molien():
    # O(3) counts per degree, from the Molien-Weyl integral, for n_rad=2, l_max=2 (s, v, q channels)
    assert linear_ace_set(2, 2, 3).count_by_degree() == {1: 2, 2: 9, 3: 26}
    assert linear_ace_set(1, 1, 2).count_by_degree() == {1: 1, 2: 2}
    ind = independent_set(*SETTING)
    assert len(ind) == ind.info["bound"] == 2 * 9 - 3


def test_pivot_columns():
    M = np.array([[1, 2, 0, 1], [0, 0, 1, 1], [1, 2, 1, 2]])
    assert pivot_columns(M) == [0, 2]


# --------------------------------------------------------------------------- invariance
@pytest.mark.parametrize("make,cutoff,species", SYSTEMS)
@pytest.mark.parametrize("kind", ["linear", "independent"])
def test_descriptors_rotation_invariant(sets, make, cutoff, species, kind):
    desc = ACEDescriptor(sets[kind], cutoff, species)
    atoms = make()
    D = desc.from_atoms(atoms)
    R = random_rotation(np.random.default_rng(5))
    rotated = atoms.copy()
    rotated.set_positions(atoms.get_positions() @ R.T)
    rotated.set_cell(np.asarray(atoms.get_cell()) @ R.T)
    D2 = desc.from_atoms(rotated)
    assert np.isfinite(D).all() and np.abs(D).max() > 0
    assert np.allclose(D, D2, rtol=1e-9, atol=1e-9 * np.abs(D).max())
    # O(3): a reflection leaves them unchanged too
    mirrored = atoms.copy()
    mirrored.set_positions(atoms.get_positions() * [-1, 1, 1])
    mirrored.set_cell(np.asarray(atoms.get_cell()) * [-1, 1, 1])
    assert np.allclose(desc.from_atoms(mirrored), D, rtol=1e-9, atol=1e-9 * np.abs(D).max())


@pytest.mark.parametrize("make,cutoff,species", SYSTEMS)
def test_descriptors_permutation_invariant(sets, make, cutoff, species):
    desc = ACEDescriptor(sets["linear"], cutoff, species)
    atoms = make()
    numbers = atoms.get_atomic_numbers()
    rng = np.random.default_rng(2)
    perm = np.arange(len(atoms))
    for z in np.unique(numbers):  # shuffle like atoms only
        idx = np.flatnonzero(numbers == z)
        perm[idx] = rng.permutation(idx)
    D = desc.from_atoms(atoms)
    D2 = desc.from_atoms(atoms[perm])
    assert np.allclose(D2, D[perm], rtol=1e-10, atol=1e-10 * np.abs(D).max())


def test_cu_descriptors_see_periodic_images(sets):
    desc = ACEDescriptor(sets["independent"], 4.0, [29])
    atoms = _cu()
    shifted = atoms.copy()
    shifted.translate([0.3, -0.2, 0.1])
    shifted.wrap()
    assert np.allclose(desc.from_atoms(atoms), desc.from_atoms(shifted), atol=1e-9)


def test_fast_molecule_pairs_match_ase():
    pos = np.stack([methane_geometry(np.random.default_rng(k)) for k in range(3)])
    fast = Structures.from_molecules(pos, [6, 1, 1, 1, 1], 2.0)
    slow = Structures.from_atoms([Atoms("CH4", positions=p) for p in pos], 2.0)
    order_f = np.lexsort((fast.pair_j, fast.pair_i))
    order_s = np.lexsort((slow.pair_j, slow.pair_i))
    assert np.array_equal(fast.pair_i[order_f], slow.pair_i[order_s])
    assert np.array_equal(fast.pair_j[order_f], slow.pair_j[order_s])
    assert np.array_equal(fast.pair_offsets, slow.pair_offsets)
    sub, atoms, pairs = fast.subset([2, 0], return_index=True)
    assert np.array_equal(sub.positions, fast.positions[atoms])
    assert np.array_equal(sub.positions[sub.pair_i], fast.positions[fast.pair_i[pairs]])


# --------------------------------------------------------------------------- forces
def _random_model(species, K, seed=0):
    torch.manual_seed(seed)
    S = len(species)
    model = ElementMLP(species, K, 8, 2, torch.zeros(S, K, dtype=torch.float64), torch.ones(S, K, dtype=torch.float64),
                       0.1, 0.7).double()
    return model


@pytest.mark.parametrize("make,cutoff,species", SYSTEMS)
@pytest.mark.parametrize("kind", ["linear", "independent"])
def test_forces_match_finite_differences(sets, make, cutoff, species, kind):
    desc = ACEDescriptor(sets[kind], cutoff, species)
    atoms = make(1)
    s = Structures.from_atoms(atoms, cutoff)
    model = _random_model(species, desc.n_features)
    pos = torch.as_tensor(s.positions)
    E, F = energy_and_forces(model, desc, s, pos)

    def energy(p):
        with torch.no_grad():
            return float(model(desc(p, s), torch.as_tensor(s.numbers)).sum())

    h = 1e-5
    for atom, comp in [(0, 0), (1, 2), (len(atoms) - 1, 1)]:
        dp = torch.zeros_like(pos)
        dp[atom, comp] = h
        fd = -(energy(pos + dp) - energy(pos - dp)) / (2 * h)
        assert abs(fd - float(F[atom, comp])) <= 1e-6 * max(1.0, abs(fd)), (atom, comp, fd, float(F[atom, comp]))
    # the precomputed-Jacobian path used for training gives the same energies and forces
    A, J = desc.base_and_jacobian(s)
    E2, F2 = energy_and_forces_from_base(model, desc.backend, A, J, s)
    assert torch.allclose(E, E2, atol=1e-12) and torch.allclose(F, F2, atol=1e-10)


def test_force_training_double_backward(sets):
    """The force loss is differentiable w.r.t. the weights (double backward through the invariants)."""
    desc = ACEDescriptor(sets["linear"], 3.5, [1, 6])
    s = Structures.from_atoms([_methane(3), _methane(4)], 3.5)
    model = _random_model([1, 6], desc.n_features)
    A, J = desc.base_and_jacobian(s)
    _, F = energy_and_forces_from_base(model, desc.backend, A, J, s, create_graph=True)
    loss = F.pow(2).sum()
    loss.backward()
    w = model.nets[0][0].weight
    g = w.grad.clone()
    # finite difference on one weight
    h = 1e-6
    with torch.no_grad():
        w[0, 0] += h
    _, Fp = energy_and_forces_from_base(model, desc.backend, A, J, s)
    with torch.no_grad():
        w[0, 0] -= 2 * h
    _, Fm = energy_and_forces_from_base(model, desc.backend, A, J, s)
    fd = (float(Fp.pow(2).sum()) - float(Fm.pow(2).sum())) / (2 * h)
    assert abs(fd - float(g[0, 0])) <= 1e-5 * max(1.0, abs(fd))


# --------------------------------------------------------------------------- data
def test_methane_geometry_constraints():
    for k in range(20):
        p = methane_geometry(np.random.default_rng([0, k]))
        r = np.linalg.norm(p[1:], axis=1)
        assert np.all((r >= 0.8) & (r <= 1.6)) and np.allclose(p[0], 0)
        hh = np.linalg.norm(p[1:, None] - p[None, 1:], axis=-1)[np.triu_indices(4, 1)]
        assert hh.min() >= 0.6


def test_tblite_energies_deterministic():
    pytest.importorskip("tblite")
    from examples.ace.data import _methane_chunk

    a = _methane_chunk((0, 0, 2))
    b = _methane_chunk((0, 0, 2))
    assert np.array_equal(a[1], b[1])  # geometries: bitwise
    # energies / forces: bitwise with OMP_NUM_THREADS=1 (as the generator runs); with more OpenMP
    # threads tblite's reductions may change the last bits
    assert np.allclose(a[2], b[2], rtol=0, atol=1e-9) and np.allclose(a[3], b[3], rtol=0, atol=1e-8)
    assert np.isfinite(a[2]).all() and np.all(a[2] < 0)
    assert np.allclose(a[3].sum(axis=1), 0.0, atol=1e-6)  # no net force on an isolated molecule


def test_codegen_backend_matches(sets, tmp_path):
    pytest.importorskip("optinv.codegen")
    import shutil

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    from examples.ace.backends import CodegenBackend

    ds = sets["independent"]
    backend = CodegenBackend(ds, out_dir=tmp_path)
    x = torch.as_tensor(np.random.default_rng(4).normal(size=(7, ds.signature.dim)))
    assert torch.allclose(backend(x), PolynomialBackend(ds)(x), rtol=1e-10, atol=1e-12)
