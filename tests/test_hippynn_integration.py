"""optinv.hippynn: HIP-HOP-NN for any (l_max, n_max) inside hippynn.

References are independent of the code under test: hippynn's own network
(same weights), least squares for the tensor extractor, rotations, finite
differences, and hippynn's own invariant counts.
"""

from __future__ import annotations

import contextlib
import copy
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("hippynn")

from hippynn.layers.hiplayers.interactions import _invariant_counts  # noqa: E402
from hippynn.networks.hiphop import HipHopNNModule as HippynnHipHop  # noqa: E402

from optinv.algebra.cartesian import coefficient_map, random_rotation  # noqa: E402
from optinv.algebra.select import select_basis  # noqa: E402
from optinv.algebra.signature import Signature  # noqa: E402
import optinv.hippynn as oh  # noqa: E402

CUTOFF = 6.0
NET = dict(n_features=6, n_sensitivities=5, dist_soft_min=0.6, dist_soft_max=3.0, dist_hard_max=CUTOFF,
           n_atom_layers=1, n_interaction_layers=2, possible_species=[0, 1, 6])


@contextlib.contextmanager
def default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def quiet(factory, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hippynn's "beta" and small-setting warnings
        return factory(*args, **kwargs)


def molecule(seed=0, n=5, dtype=torch.float64):
    """A tiny random molecule: one-hot species and positions (all pairs inside the cutoff)."""
    rng = np.random.default_rng(seed)
    while True:  # atoms no closer than 0.8, as in a molecule
        xyz = rng.normal(scale=1.1, size=(n, 3))
        d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)[np.triu_indices(n, 1)]
        if 0.8 < d.min() and d.max() < CUTOFF - 0.5:
            break
    pos = torch.tensor(xyz, dtype=dtype)
    species = torch.nn.functional.one_hot(torch.tensor(rng.integers(0, 2, n)), 2)
    return species, pos


def pairs(pos):
    n = pos.shape[0]
    first, second = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    off = first != second
    first, second = first[off], second[off]
    coord = pos[second] - pos[first]
    dist = coord.norm(dim=1)
    assert dist.max() < CUTOFF  # a fixed pair list: positions can move without pairs changing
    return first, second, dist, coord


def energy(net, species, pos, head):
    features = net(species, *pairs(pos))
    return sum((f @ w).sum() for f, w in zip(features[1:], head))


def heads(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    dtype = next(net.parameters()).dtype
    return [torch.randn(nf, generator=g, dtype=dtype) for nf in net.feature_sizes[1:]]


def pair_of_networks(l_max, n_max):
    """hippynn's network and ours, same weights, built in float64 with exact constants.

    hippynn rounds its projection constants in the default dtype at import; our
    state dict carries exact ones, so loading it makes hippynn float64-exact too.
    """
    with default_dtype(torch.float64):
        torch.manual_seed(l_max * 10 + n_max)
        theirs = quiet(HippynnHipHop, **NET, l_max=l_max, n_max=n_max)
        # hippynn's constants are module-level Parameters shared by every network: copy first
        theirs = copy.deepcopy(theirs).double()
        ours = quiet(oh.HipHopNNModule, **NET, l_max=l_max, n_max=n_max, basis="hippynn")
    exact = {k: v.clone() for k, v in ours.state_dict().items() if "maps." in k}
    ours.load_state_dict(theirs.state_dict(), strict=True)  # hippynn -> ours: the weights
    state = ours.state_dict()
    state.update(exact)
    theirs.load_state_dict(state, strict=True)  # ours -> hippynn: exact constants
    return theirs, ours


# -- equality with hippynn's own network -----------------------------------------------------


@pytest.mark.parametrize("l_max,n_max", [(3, 4), (3, 3), (2, 4), (2, 3), (1, 2), (3, 2)])
def test_same_weights_same_energies_and_forces_as_hippynn(l_max, n_max):
    theirs, ours = pair_of_networks(l_max, n_max)
    assert set(theirs.state_dict()) == set(ours.state_dict())
    head = heads(ours)
    for seed in range(2):
        species, pos = molecule(seed)
        results = []
        for net in (theirs, ours):
            p = pos.clone().requires_grad_(True)
            e = energy(net, species, p, head)
            (f,) = torch.autograd.grad(-e, p)
            results.append((e.detach(), f))
        (e1, f1), (e2, f2) = results
        torch.testing.assert_close(e2, e1, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(f2, f1, rtol=1e-10, atol=1e-10)


def test_same_training_loss_curve_as_hippynn():
    theirs, ours = pair_of_networks(3, 4)
    head = heads(ours)
    species, pos = molecule(3)
    target_e, target_f = torch.tensor(1.5, dtype=torch.float64), torch.zeros_like(pos)
    curves = []
    for net in (theirs, ours):
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        curve = []
        for _ in range(4):
            p = pos.clone().requires_grad_(True)
            e = energy(net, species, p, head)
            (g,) = torch.autograd.grad(e, p, create_graph=True)
            loss = (e - target_e) ** 2 + ((-g - target_f) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append(loss.item())
        curves.append(curve)
    assert curves[0][-1] < curves[0][0]  # it trains
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-10)


def test_hippynn_lists_have_hippynn_counts_and_the_generic_33_is_larger():
    for (n_max, l_max), count in _invariant_counts.items():
        assert len(oh.hippynn_invariants(l_max, n_max)) == count
    # hippynn's (3, 3) uses 7, the generic maximal set 8 (adds v.q.t)
    generic = oh.resolve_basis(3, 3)
    assert len(generic) == 8 and "i,jk,ijk->,v,q,t" in generic.einsums
    with default_dtype(torch.float64):
        theirs = quiet(HippynnHipHop, **NET, l_max=3, n_max=3)
        ours = quiet(oh.HipHopNNModule, **NET, l_max=3, n_max=3)
    with pytest.raises(RuntimeError, match="size mismatch"):
        ours.load_state_dict(theirs.state_dict())


# -- any l_max --------------------------------------------------------------------------------


@pytest.mark.parametrize("l_max", [2, 4, 5])
def test_tensor_extractor_matches_least_squares_for_any_rank(l_max):
    """Coefficients c with C c = the symmetric traceless part of r^(x)l (independent: lstsq)."""
    with default_dtype(torch.float32):  # built under float32: must still be float64-exact
        ext = oh.TensorExtractor(l_max)
    r = torch.tensor(np.random.default_rng(l_max).normal(size=(6, 3)))
    r = r / r.norm(dim=1, keepdim=True)
    out = ext(r)
    assert [t.shape[1] for t in out] == [2 * l + 1 for l in range(l_max + 1)]
    assert all(t.dtype == torch.float64 for t in out)
    for l in range(1, l_max + 1):
        C = coefficient_map(l).reshape(3**l, 2 * l + 1).astype(float)
        outer = r.numpy()
        for _ in range(l - 1):
            outer = np.einsum("ni,nj->nij", outer, r.numpy()).reshape(len(r), -1)
        ref = np.linalg.lstsq(C, outer.T, rcond=None)[0].T
        np.testing.assert_allclose(out[l].numpy(), ref, rtol=0, atol=1e-13)


def test_hippynn_float32_projection_constants_are_not_ours():
    """Why equality needs our state dict: hippynn's pmaps are rounded at import."""
    from hippynn.layers.hiplayers import tensors

    ours = torch.as_tensor(oh.projector(3))
    theirs = tensors.pmaps[3].to(torch.float64)
    if tensors.pmaps[3].dtype == torch.float32:
        assert (theirs - ours).abs().max() > 1e-10
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-6)


@pytest.mark.parametrize("l_max,n_max", [(4, 4), (5, 3)])
def test_high_l_network_builds_trains_and_has_exact_forces(l_max, n_max):
    with default_dtype(torch.float64):
        torch.manual_seed(0)
        net = oh.HipHopNNModule(**NET, l_max=l_max, n_max=n_max)
    assert net.interaction_layers[0].n_invariants == len(select_basis(Signature.from_l_max(l_max), n_max).einsums)
    head = heads(net)
    species, pos = molecule(1, n=4)
    # rotation invariance of the energy
    g = torch.tensor(random_rotation(np.random.default_rng(2)))
    e0 = energy(net, species, pos, head)
    torch.testing.assert_close(energy(net, species, pos @ g.T, head), e0, rtol=1e-11, atol=1e-11)
    # autograd forces against finite differences (fourth-order central stencil)
    p = pos.clone().requires_grad_(True)
    (force,) = torch.autograd.grad(-energy(net, species, p, head), p)
    h = 1e-3
    fd = torch.zeros_like(pos)
    with torch.no_grad():
        for a in range(pos.shape[0]):
            for k in range(3):
                dp = torch.zeros_like(pos)
                dp[a, k] = h
                e = [energy(net, species, pos + m * dp, head) for m in (-2, -1, 1, 2)]
                fd[a, k] = -(e[0] - 8 * e[1] + 8 * e[2] - e[3]) / (12 * h)
    torch.testing.assert_close(force, fd, rtol=1e-5, atol=1e-6)  # a wrong term is O(1)
    # one training step on energy + forces (a small step along the gradient) lowers the loss
    def loss_fn():
        p = pos.clone().requires_grad_(True)
        e = energy(net, species, p, head)
        (grad,) = torch.autograd.grad(e, p, create_graph=True)
        return (e - 1.0) ** 2 + (grad**2).mean()

    net.zero_grad()
    before = loss_fn()
    before.backward()
    assert net.interaction_layers[0].mixing_weights.grad.abs().sum() > 0
    norm = torch.sqrt(sum((q.grad**2).sum() for q in net.parameters() if q.grad is not None))
    with torch.no_grad():
        for q in net.parameters():
            if q.grad is not None:
                q -= 1e-4 * q.grad / norm
    assert loss_fn().item() < before.item()


# -- pickling, dtype and device moves -----------------------------------------------------------

def test_pickled_high_l_model_reloads_in_a_fresh_process(tmp_path):
    """l_max=5 is compiled into the cache, not committed: the child never asks for it."""
    with default_dtype(torch.float64):
        torch.manual_seed(0)
        net = oh.HipHopNNModule(**NET, l_max=5, n_max=3)
    species, pos = molecule(4, n=4)
    features = net(species, *pairs(pos))[-1].detach()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps((net, species, pairs(pos), features)))
    child = (
        "import pickle, sys, torch\n"
        "net, species, pair_data, expected = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "got = net(species, *pair_data)[-1]\n"
        "torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)\n"
        "print('ok', type(net).__module__, net.interaction_layers[0].n_invariants)\n"
    )
    run = subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["ok", "optinv.hippynn", "20"]


def test_dtype_moves_keep_exact_constants():
    with default_dtype(torch.float32):
        torch.manual_seed(0)
        net32 = quiet(oh.HipHopNNModule, **NET, l_max=4, n_max=3)
    species, pos = molecule(5)
    out32 = net32(species, *pairs(pos.float()))[-1]
    assert out32.dtype == torch.float32
    net64 = net32.double()  # built in float32, moved to float64
    with default_dtype(torch.float64):
        ref = quiet(oh.HipHopNNModule, **NET, l_max=4, n_max=3)
    ref.load_state_dict(net64.state_dict())
    out64 = net64(species, *pairs(pos))[-1]
    torch.testing.assert_close(out64, ref(species, *pairs(pos))[-1], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=1e-4)
    back = net64.float()(species, *pairs(pos.float()))[-1]
    assert back.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_move_matches_cpu():
    pytest.importorskip("cupy")
    with default_dtype(torch.float64):
        net = oh.HipHopNNModule(**NET, l_max=4, n_max=4)
    species, pos = molecule(6)
    cpu = net(species, *pairs(pos))[-1]
    gpu = net.cuda()(species.cuda(), *(t.cuda() for t in pairs(pos)))[-1]
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=1e-10)


# -- the graph node ---------------------------------------------------------------------------


def test_graph_node_builds_a_hippynn_graph_for_l_max_4():
    from hippynn.graphs import GraphModule, inputs, targets

    species = inputs.SpeciesNode(db_name="Z")
    positions = inputs.PositionsNode(db_name="R")
    with default_dtype(torch.float64):
        net = oh.HipHopnn("HIPHOP", (species, positions),
                          module_kwargs=dict(**NET, l_max=4, n_max=4, basis="generic"))
        henergy = targets.HEnergyNode("HEnergy", net)
        model = GraphModule([species, positions], [henergy.mol_energy])
    assert isinstance(net.torch_module, oh.HipHopNNModule)
    Z = torch.tensor([[6, 1, 1, 1, 1]])
    R = molecule(7)[1].unsqueeze(0)
    (e,) = model(Z, R)
    g = torch.tensor(random_rotation(np.random.default_rng(8)))
    (e_rot,) = model(Z, R @ g.T)
    torch.testing.assert_close(e_rot, e, rtol=1e-11, atol=1e-11)


# -- bad arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(l_max=7, n_max=4), ValueError, "l_max=7 is not supported"),
    (dict(l_max=-1, n_max=4), ValueError, "l_max=-1"),
    (dict(l_max=3, n_max=0), ValueError, "n_max=0"),
    (dict(l_max=2.5, n_max=4), TypeError, "l_max: expected an integer"),
    (dict(l_max=4, n_max=4, basis="hippynn"), ValueError, "hippynn has invariants only for l_max <= 3"),
    (dict(l_max=3, n_max=4, basis="optimal"), ValueError, "basis: expected 'generic', 'hippynn'"),
    (dict(l_max=3, n_max=4, basis=5), TypeError, "basis: expected"),
    (dict(l_max=3, n_max=2, basis=["i,j,ij->,v,v,q"]), ValueError, "3 factors, more than n_max=2"),
    (dict(l_max=2, n_max=4, basis=["ijk,ijk->,t,t"]), ValueError, "not a valid invariant list for l_max=2"),
])
def test_bad_settings_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        quiet(oh.HipHopNNModule, **NET, **kwargs)


def test_user_list_and_basis_object():
    basis = select_basis(Signature.from_l_max(2), 3)
    net = quiet(oh.HipHopNNModule, **NET, l_max=2, n_max=3, basis=basis)
    assert net.invariants.einsums == tuple(basis.einsums)
    with pytest.raises(ValueError, match="signature"):
        quiet(oh.HipHopNNModule, **NET, l_max=3, n_max=3, basis=basis)
    # hippynn's names are accepted; the order given is kept
    net = quiet(oh.HipHopNNModule, **NET, l_max=2, n_max=3, basis=["ij,ij->,two,two", "->,zero"])
    assert net.invariants.einsums == ("ij,ij->,q,q", "->,s")
    species, pos = molecule(9)
    assert torch.isfinite(net(species, *pairs(pos.float()))[-1]).all()


def test_flexible_basis_is_the_committed_flexible_module_and_keeps_strata_ranks():
    """``basis="flexible"`` is the stratum-aware set that ``optinv compile --flexible`` committed."""
    import json
    from pathlib import Path

    from optinv.algebra.strata import catalogue
    from optinv.algebra.select import check_invariants

    meta = json.loads((Path(__file__).resolve().parents[1] / "generated/flex_l3_n4/metadata.json").read_text())
    net = quiet(oh.HipHopNNModule, **NET, l_max=3, n_max=4, basis="flexible")
    assert net.invariants.origin == "flexible"
    assert set(net.invariants.einsums) == set(oh.resolve_basis(3, 4, meta["invariants"]).einsums)
    # independently of the search: every stratum of the catalogue is at its maximum with this list
    sig = Signature.from_l_max(3)
    report = check_invariants(list(net.invariants.einsums), sig, strata=catalogue(sig), n_max=4)
    assert report.strata and all(row.rank == row.max_rank for row in report.strata)
    species, pos = molecule(9)
    assert torch.isfinite(net(species, *pairs(pos.float()))[-1]).all()


# -- degenerate environments ------------------------------------------------------------------


def test_pairs_equal_in_degree_2_invariants_are_told_apart_by_degree_4():
    """Rotating v, q, t by different rotations keeps every degree-2 invariant (|v|^2, |q|^2, |t|^2)
    and changes the couplings: the n_max=2 layer sees one environment, n_max=3 and 4 see two."""
    from optinv.algebra.cartesian import transform_coefficients

    rng = np.random.default_rng(11)
    x = rng.normal(size=(20, 16))
    y = x.copy()
    for l, cols in ((1, slice(1, 4)), (2, slice(4, 9)), (3, slice(9, 16))):
        y[:, cols] = transform_coefficients(x[:, cols], l, random_rotation(rng))
    x, y = torch.tensor(x), torch.tensor(y)
    two = oh.HopInvariantLayer(n_max=2, l_max=3)
    torch.testing.assert_close(two(y), two(x), rtol=1e-12, atol=1e-12)
    for n_max in (3, 4):
        layer = oh.HopInvariantLayer(n_max=n_max, l_max=3)
        gap = (layer(y) - layer(x)).abs().max(dim=1).values
        assert (gap > 1e-3 * layer(x).abs().max()).all()
    # hippynn's own n_max=2 list is blind to the same pairs
    hip2 = oh.HopInvariantLayer(n_max=2, l_max=3, basis="hippynn")
    torch.testing.assert_close(hip2(y), hip2(x), rtol=1e-12, atol=1e-12)
