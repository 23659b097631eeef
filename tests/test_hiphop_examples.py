"""examples/hiphop deployment and degeneracy tools: constructed pairs, reloading trained models, MD bookkeeping."""

from __future__ import annotations

import itertools
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("hippynn")
pytest.importorskip("scipy")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.hiphop import degenerate  # noqa: E402
from examples.hiphop.md import energy_conservation  # noqa: E402
from examples.hiphop.trained import parse_run_name  # noqa: E402


# -- (a) 3-body-degenerate pairs --------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair():
    return degenerate.degenerate_pair(1, 1.05, 1.15)


def test_constructed_pair_has_equal_three_body_descriptors_and_is_not_congruent(pair):
    A, B = pair
    np.testing.assert_allclose(np.linalg.norm(A, axis=1), [1.05, 1.05, 1.15, 1.15], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(B, axis=1), [1.05, 1.05, 1.15, 1.15], atol=1e-12)
    # what a 3-body descriptor sees: every (r_i, r_j, cos theta_ij), as a multiset
    assert np.abs(degenerate.triplets(A) - degenerate.triplets(B)).max() < 1e-10
    # but no relabelling of the H atoms (with a rotation or reflection) maps A onto B
    assert degenerate.congruence_distance(A, B) > 0.05
    # the checks can fail: B relabelled and rotated is congruent
    R = degenerate.random_rotation(np.random.default_rng(3))
    assert degenerate.congruence_distance(A, A[[2, 0, 3, 1]] @ R.T) < 1e-12


def test_optinv_engine_degree_two_equal_degree_four_different(pair):
    """The independent check: optinv's generated modules on the C environment's neighbour sums."""
    from optinv.generated import hop_l3_n4, hop_l4_n2

    A, B = pair
    fa, fb = (degenerate.neighbour_sums(v, 4, n_radial=5, seed=0) for v in (A, B))
    two_a, two_b = hop_l4_n2.forward(fa), hop_l4_n2.forward(fb)
    four_a, four_b = hop_l3_n4.forward(fa[:, :16]), hop_l3_n4.forward(fb[:, :16])
    scale = np.abs(four_a).max()
    assert np.abs(two_a - two_b).max() < 1e-10 * scale  # every degree-2 invariant, l <= 4, 5 radial functions
    assert np.abs(four_a - four_b).max() > 1e-2 * scale  # some degree-4 invariant tells them apart
    # a generic change of A (one H moved) does change degree-2 invariants: the first check is not vacuous
    moved = A.copy()
    moved[0] += [0.0, 0.05, 0.0]
    fm = degenerate.neighbour_sums(moved, 4, n_radial=5, seed=0)
    assert np.abs(hop_l4_n2.forward(fm) - two_a).max() > 1e-3 * scale


def test_swapped_gram_matrix_and_bad_input():
    G = np.arange(16.0).reshape(4, 4)
    G = G + G.T
    S = degenerate.swapped(G)
    assert S[0, 2] == G[0, 3] and S[3, 0] == G[2, 0] and np.array_equal(S, S.T)
    assert np.array_equal(degenerate.swapped(S), G)
    with pytest.raises(ValueError, match="mode: expected"):
        degenerate.distorted_methane("twist", 0.1, 1.09)
    with pytest.raises(ValueError, match="run folder: expected"):
        parse_run_name("hipnn-4000")
    assert parse_run_name("/x/hiphop-l3n4-generic_n4000_s2") == ("hiphop-l3n4-generic", 4000, 2)


# -- (b) near-symmetric distortions ---------------------------------------------------------------


def test_distortions_break_the_tetrahedron_as_stated():
    r = 1.09
    tetra = degenerate.distorted_methane("stretch", 0.0, r)
    for mode in degenerate.MODES:
        np.testing.assert_allclose(degenerate.distorted_methane(mode, 0.0, r), tetra, atol=1e-14)
    bend = degenerate.distorted_methane("t2-bend", 5.0, r)[1:]
    np.testing.assert_allclose(np.linalg.norm(bend, axis=1), r, atol=1e-12)  # bond lengths kept
    angle = lambda u, v: np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))  # noqa: E731
    for k in (1, 2, 3):
        assert angle(bend[0], bend[k]) == pytest.approx(np.degrees(np.arccos(-1 / 3)) + 5.0, abs=1e-9)
    e = degenerate.distorted_methane("e-bend", 0.1, r)[1:]
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), r, atol=1e-12)
    # D2d: the six H-C-H angles come in a pair and a quadruple
    angles = sorted(round(angle(e[i], e[j]), 9) for i, j in itertools.combinations(range(4), 2))
    assert len(set(angles)) == 2 and angles.count(angles[0]) in (2, 4)
    # curvature of a known quadratic + cubic
    eps = np.linspace(-0.2, 0.2, 9)
    assert degenerate.curvature(eps, 3 * eps**2 + eps**3, 0.1) == pytest.approx(6.0, rel=1e-9)
    # E ~ eps^p: 2 for a smooth minimum, 1 for a cusp like sqrt(x^2 + c) far from x = 0
    assert degenerate.power_law_exponent([0.01, 0.1], [2e-4, 2e-2]) == pytest.approx(2.0)
    assert degenerate.power_law_exponent([0.1, 1.0], np.sqrt(np.array([0.1, 1.0]) ** 2 + 1e-8)) == pytest.approx(1.0, abs=1e-4)


# -- MD bookkeeping ---------------------------------------------------------------------------------


def test_energy_conservation_statistics_of_a_known_trajectory():
    t = np.linspace(0, 2, 2001)  # ps
    ekin = 0.1 + 0.05 * np.cos(40 * t)
    epot = 1.0 - ekin + 0.002 * np.sin(80 * t) + 5e-3 * t  # drift 5e-3 eV/ps over 5 atoms
    s = energy_conservation({"t_ps": t, "epot": epot, "ekin": ekin}, n_atoms=5)
    assert s["drift_eV_per_atom_per_ps"] == pytest.approx(1e-3, rel=1e-2)
    assert s["rms_kinetic_eV"] == pytest.approx(0.05 / np.sqrt(2), rel=1e-3)


# -- a trained model, reloaded ----------------------------------------------------------------------


def _pair_potential(positions):
    """A smooth toy potential (Morse C-H, repulsive H-H) with exact forces, for a tiny training set."""
    x = torch.tensor(positions, requires_grad=True)
    d = (x[:, :, None] - x[:, None]).norm(dim=-1) + torch.eye(5, dtype=x.dtype)
    e = 4.0 * ((1 - torch.exp(-1.8 * (d[:, 0, 1:] - 1.09))) ** 2).sum(1)
    i, j = torch.triu_indices(5, 5, 1)[:, 4:]  # H-H pairs
    e = e + (0.5 / d[:, i, j] ** 6).sum(1)
    (grad,) = torch.autograd.grad(e.sum(), x)
    return e.detach().numpy(), -grad.numpy()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    pytest.importorskip("pytorch_lightning")
    from examples.ace.data import METHANE_NUMBERS, methane_geometry
    from examples.hiphop.train import run

    rng = np.random.default_rng(0)
    positions = np.array([methane_geometry(rng) for _ in range(80)])
    energy, forces = _pair_potential(positions)
    data = {"numbers": METHANE_NUMBERS, "positions": positions, "energy": energy, "forces": forces}
    folder = tmp_path_factory.mktemp("runs") / "hiphop-l2n3-generic_n50_s0"
    metrics = run("hiphop-l2n3-generic", data, n_train=50, n_valid=10, n_test=20, max_epochs=2, patience=5,
                  batch_size=25, out_dir=folder)
    return folder, data, metrics


def test_load_trained_reproduces_the_trained_models_test_error(tiny_run):
    from examples.hiphop.train import splits
    from examples.hiphop.trained import load_trained

    folder, data, metrics = tiny_run
    model = load_trained(folder, dtype=torch.float32)
    assert (model.variant, model.n_train, model.seed) == ("hiphop-l2n3-generic", 50, 0)
    _, _, test = splits(len(data["energy"]), 50, 10, 20, 0)
    energy, _ = model.predict(data["numbers"], data["positions"][test].astype(np.float32))
    rmse = 1e3 * np.sqrt(np.mean((energy - data["energy"][test]) ** 2)) / 5
    # the trainer's own test metric was computed on the best checkpoint: the reloaded model must agree
    assert rmse == pytest.approx(metrics["test_energy_rmse_meV_per_atom"], rel=1e-5)


def test_reloaded_model_in_the_ase_calculator_and_mliap_interface(tiny_run):
    from ase import Atoms

    from examples.hiphop.md import finite_difference_check
    from examples.hiphop.mliap import ELEMENTS, FakeMLIAPData, build_interface, remove_stand_in
    from examples.hiphop.trained import load_trained

    folder, data, _ = tiny_run
    model = load_trained(folder)  # float64
    positions = data["positions"][3]
    energy, forces = model.predict(data["numbers"], positions)
    atoms = Atoms(numbers=data["numbers"], positions=positions)
    atoms.calc = model.calculator()
    assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), forces, atol=1e-10)
    fd = finite_difference_check(model.calculator(), atoms, h=1e-5)
    assert fd["max_abs_error_eV_per_A"] < 1e-6 * max(1.0, fd["max_abs_force_eV_per_A"])
    # hippynn's LAMMPS object, pickled and unpickled, on the pair data LAMMPS would pass
    try:
        interface, _, _ = build_interface(folder)  # without LAMMPS: a stand-in for its Python base class
        interface = pickle.loads(pickle.dumps(interface))
    finally:
        remove_stand_in()
    fake = FakeMLIAPData([ELEMENTS.index("C" if z == 6 else "H") for z in data["numbers"]], positions,
                         2 * interface.rcutfac)
    interface.compute_forces(fake)
    assert fake.energy == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(fake.f, forces, atol=1e-10)


def test_study_jobs_are_claimed_once_across_processes(tmp_path, monkeypatch):
    """Two study processes never train the same job: the claim is an exclusive file create."""
    import multiprocessing

    from examples.hiphop import study

    monkeypatch.setattr(study, "HERE", tmp_path)
    assert study._claim("curves", "hipnn", 250, 0)
    assert not study._claim("curves", "hipnn", 250, 0)  # taken
    assert study._claim("curves", "hipnn", 250, 1)  # another seed is another job
    # processes racing for the same jobs: each job is taken exactly once
    with multiprocessing.get_context("fork").Pool(4) as pool:
        won = pool.starmap(study._claim, [("race", "hipnn", 1000, seed % 8) for seed in range(32)])
    assert sum(won) == 8
    assert sorted(p.name for p in (tmp_path / "runs" / "race" / "claims").iterdir()) == \
        sorted(f"hipnn_n1000_s{seed}" for seed in range(8))
