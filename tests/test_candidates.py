"""Candidate enumeration: complete and duplicate-free against brute force, invariant, lazy, ordered."""

import itertools
from functools import lru_cache

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optinv.testing as ot
from optinv.algebra import candidates as enum_mod
from optinv.algebra import select as select_mod
from optinv.algebra.cartesian import LEVI_CIVITA, quaternion_matrix, tensor_from_coefficients, transform_rows
from optinv.algebra.candidates import candidates, graphs_of_degree
from optinv.algebra.errors import OptinvError
from optinv.algebra.evaluate import evaluate
from optinv.algebra.graphs import INDEX_LETTERS
from optinv.algebra.select import select_basis
from optinv.algebra.signature import EPSILON, Signature
from budget import scaled


# -- an independent brute force: every labelled multigraph, grouped with networkx ---------------------


def all_labelled(ranks):
    """Every loop-free symmetric multiplicity matrix with row sums ``ranks`` (labelled nodes)."""
    n = len(ranks)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    mult = [[0] * n for _ in range(n)]
    left = list(ranks)

    def rec(p):
        if p == len(pairs):
            if not any(left):
                yield [row[:] for row in mult]
            return
        a, b = pairs[p]
        # once every pair touching node a has been set, a must be saturated
        last_for_a = all(pa != a for pa, _ in pairs[p + 1 :])
        for m in range(min(left[a], left[b]) + 1):
            if last_for_a and left[a] - m:
                continue
            mult[a][b] = mult[b][a] = m
            left[a] -= m
            left[b] -= m
            yield from rec(p + 1)
            left[a] += m
            left[b] += m
        mult[a][b] = mult[b][a] = 0

    if n == 1:
        if ranks[0] == 0:
            yield [[0]]
        return
    yield from rec(0)


def nx_graph(labels, mult):
    G = nx.Graph()
    for a, lab in enumerate(labels):
        G.add_node(a, label=lab)
    for a, b in itertools.combinations(range(len(labels)), 2):
        if mult[a][b]:
            G.add_edge(a, b, m=str(mult[a][b]))
    return G


def nx_iso(G, H):
    return nx.is_isomorphic(G, H, node_match=lambda u, v: u["label"] == v["label"],
                            edge_match=lambda e, f: e["m"] == f["m"])


def einsum_value(labels, mult, tensors, eps):
    """Value of a labelled multigraph on Cartesian tensors (batched), written out independently."""
    subs = [""] * len(labels)
    letters = iter(INDEX_LETTERS)
    for a, b in itertools.combinations(range(len(labels)), 2):
        for _ in range(mult[a][b]):
            ch = next(letters)
            subs[a] += ch
            subs[b] += ch
    ops, terms = [], []
    for lab, sub in zip(labels, subs):
        if lab == EPSILON:
            ops.append(eps)
            terms.append(sub)
        else:
            ops.append(tensors[lab])
            terms.append("Z" + sub)
    return np.einsum(",".join(terms) + "->Z", *ops)


def cartesian(x, sig, absolute=False):
    out = {}
    for spec, sl in zip(sig.tensors, sig.slices().values()):
        T = tensor_from_coefficients(x[:, sl], spec.rank)
        out[spec.name] = np.abs(T) if absolute else T
    return out


def brute_force_classes(sig: Signature, degree: int, seed: int = 5):
    """Isomorphism classes of labelled multigraphs of this degree that are nonzero invariants.

    Connected ones, and under O(3) with axial tensors the products of two
    connected pseudoscalars (each checked to flip under the inversion).

    Returns a list of (labels, [labelled member matrices], networkx graph of the first member).
    Zero classes (e.g. eps contracted twice with one symmetric tensor) are dropped by
    evaluating at random points; under O(3), classes that change sign under the
    inversion are dropped by evaluating at the inverted point.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, sig.dim))
    T, A = cartesian(x, sig), cartesian(x, sig, absolute=True)
    Tinv = cartesian(transform_rows(x, sig, -np.eye(3)), sig)
    eps, abs_eps = LEVI_CIVITA.astype(float), np.abs(LEVI_CIVITA).astype(float)
    names = sig.names
    # O(3) with axial tensors: products of two pseudoscalars are candidates too (up to one eps in each)
    products = sig.group == "O3" and any(t.axial for t in sig.tensors)
    eps_options = [0, 1, 2] if products else ([0, 1] if sig.allows_epsilon else [0])

    def pseudoscalar_part(labels_, mult, nodes) -> bool:
        idx = sorted(nodes)
        sub_labels = [labels_[i] for i in idx]
        sub = [[mult[a][b] for b in idx] for a in idx]
        if all(lab == EPSILON for lab in sub_labels):
            return False  # eps contracted with eps alone: a constant
        v = einsum_value(sub_labels, sub, T, eps)
        mag = einsum_value(sub_labels, sub, A, abs_eps)
        if np.all(np.abs(v) <= 1e-9 * mag):
            return False  # a zero factor
        vi = einsum_value(sub_labels, sub, Tinv, eps)
        return np.allclose(vi, -v, rtol=1e-9, atol=1e-9 * mag.max()) and sub_labels.count(EPSILON) <= 1

    classes = []
    for combo in itertools.combinations_with_replacement(names, degree):
        for n_eps in eps_options:
            labels = list(combo) + [EPSILON] * n_eps
            ranks = [3 if lab == EPSILON else sig.tensor(lab).rank for lab in labels]
            buckets: dict[str, list] = {}
            for mult in all_labelled(ranks):
                G = nx_graph(labels, mult)
                if not nx.is_connected(G):
                    parts = list(nx.connected_components(G))
                    if not (products and len(parts) == 2 and all(pseudoscalar_part(labels, mult, p) for p in parts)):
                        continue
                elif n_eps > 1:
                    continue
                h = nx.weisfeiler_lehman_graph_hash(G, node_attr="label", edge_attr="m")
                for cls in buckets.setdefault(h, []):
                    if nx_iso(cls[2], G):
                        cls[1].append(mult)
                        break
                else:
                    buckets[h].append((labels, [mult], G))
            for group in buckets.values():
                for cls in group:
                    labels_, members, _ = cls
                    v = einsum_value(labels_, members[0], T, eps)
                    mag = einsum_value(labels_, members[0], A, abs_eps)
                    if np.all(np.abs(v) <= 1e-9 * mag):
                        continue  # identically zero
                    if sig.group == "O3":
                        vi = einsum_value(labels_, members[0], Tinv, eps)
                        if not np.allclose(vi, v, rtol=1e-9, atol=1e-9 * mag.max()):
                            continue  # a pseudoscalar: not an O(3) invariant
                    classes.append(cls)
    return classes


BRUTE_CASES = [
    (Signature.from_l_max(2), 5),
    (Signature.from_l_max(2, "SO3"), 5),
    (Signature.from_l_max(3), 4),
    (Signature.from_l_max(3, "SO3"), 4),
    (Signature.parse("a:1,b:1,q:2", "SO3"), 4),
    (Signature.parse("a:1,b:1,c:1", "SO3"), 4),
    (Signature.parse("v:1,w:1:axial,q:2"), 4),
    (Signature.parse("s0:0,s1:0,q:2,t:3,l4:4"), 3),
]
BRUTE_PARAMS = [(k, d) for k, (_, n) in enumerate(BRUTE_CASES) for d in range(1, n + 1)]


@lru_cache(maxsize=None)
def engine_and_brute(k: int, degree: int):
    sig = BRUTE_CASES[k][0]
    return sig, graphs_of_degree(sig, degree), brute_force_classes(sig, degree)


@pytest.mark.parametrize("k, degree", BRUTE_PARAMS, ids=[f"{BRUTE_CASES[k][0].describe()}-deg{d}" for k, d in BRUTE_PARAMS])
def test_one_candidate_per_isomorphism_class_against_brute_force(k, degree):
    sig, graphs, classes = engine_and_brute(k, degree)
    assert len({g.key for g in graphs}) == len(graphs), "duplicate keys"
    matched = [0] * len(classes)
    for g in graphs:
        G = nx_graph(list(g.labels), g.multiplicity_matrix())
        hits = [i for i, cls in enumerate(classes) if nx_iso(cls[2], G)]
        assert len(hits) == 1, f"{g.einsum}: matches {len(hits)} brute-force classes"
        matched[hits[0]] += 1
    missing = [cls for cls, m in zip(classes, matched) if m == 0]
    # The engine drops Levi-Civita graphs that vanish identically or coincide (up to
    # sign) with a cheaper kept one (Schouten identities); anything else is a miss.
    x = np.random.default_rng(5).normal(size=(3, sig.dim))
    T, A = cartesian(x, sig), cartesian(x, sig, absolute=True)
    eps, abs_eps = LEVI_CIVITA.astype(float), np.abs(LEVI_CIVITA).astype(float)
    kept_values = evaluate(graphs, x, sig) if graphs else np.zeros((3, 0))
    for cls in missing:
        assert EPSILON in cls[0], f"brute force found a class the engine missed: {cls[0]} {cls[1][0]}"
        v = einsum_value(cls[0], cls[1][0], T, eps)
        tol = 1e-9 * einsum_value(cls[0], cls[1][0], A, abs_eps).max()
        same = [k for k in range(kept_values.shape[1])
                if np.allclose(np.abs(v), np.abs(kept_values[:, k]), rtol=0, atol=tol)
                and (np.allclose(v, kept_values[:, k], atol=tol) or np.allclose(v, -kept_values[:, k], atol=tol))]
        assert np.abs(v).max() <= tol or same, f"dropped eps class {cls[0]} is neither zero nor a duplicate"
    assert len(graphs) + len(missing) == len(classes)


@pytest.mark.parametrize("k, degree", [p for p in BRUTE_PARAMS if p[1] >= 2],
                         ids=[f"{BRUTE_CASES[k][0].describe()}-deg{d}" for k, d in BRUTE_PARAMS if d >= 2])
def test_isomorphic_graphs_share_values_and_kept_graphs_differ(k, degree):
    sig, graphs, classes = engine_and_brute(k, degree)
    x = np.random.default_rng(11).normal(size=(3, sig.dim))
    T, A = cartesian(x, sig), cartesian(x, sig, absolute=True)
    eps, abs_eps = LEVI_CIVITA.astype(float), np.abs(LEVI_CIVITA).astype(float)
    values = evaluate(graphs, x, sig)
    for g, col in zip(graphs, values.T):
        G = nx_graph(list(g.labels), g.multiplicity_matrix())
        (cls,) = [c for c in classes if nx_iso(c[2], G)]
        for mult in cls[1][:8]:  # every labelled member (up to 8) is the same function
            mag = einsum_value(cls[0], mult, A, abs_eps)
            v = einsum_value(cls[0], mult, T, eps)
            if g.has_epsilon:
                # eps is antisymmetric: which slot an edge uses flips the sign, so a
                # multigraph with eps fixes its invariant up to sign only
                v = v * np.sign(v[0] * col[0])
            np.testing.assert_allclose(v, col, rtol=0, atol=1e-10 * mag.max())
    # kept graphs are different functions: no two columns agree at all points
    scale = np.abs(values).max(axis=0) + 1e-300
    for i, j in itertools.combinations(range(len(graphs)), 2):
        assert not np.allclose(values[:, i], values[:, j], rtol=1e-8, atol=1e-12 * max(scale[i], scale[j])), (
            f"{graphs[i].einsum} and {graphs[j].einsum} have equal values"
        )


# -- every candidate is an invariant (pseudoscalars flip under reflections) -----------------------------

INVARIANCE_CASES = [
    (Signature.from_l_max(3), 4),
    (Signature.from_l_max(3, "SO3"), 4),
    (Signature.parse("a:1,b:1,q:2", "SO3"), 4),
    (Signature.parse("v:1,w:1:axial,q:2,t:3"), 3),
    (Signature.parse("v:1,w:1:axial,q:2", "SO3"), 4),
    (Signature.channels({0: 2, 1: 2, 2: 2}, "SO3"), 3),
    (Signature.parse("q:2,l5:5,l8:8"), 3),
]


@lru_cache(maxsize=None)
def invariance_graphs(k: int):
    sig, n = INVARIANCE_CASES[k]
    return [g for g in candidates(sig, n)]


@pytest.mark.parametrize("k", range(len(INVARIANCE_CASES)), ids=[s.describe() for s, _ in INVARIANCE_CASES])
@settings(max_examples=scaled(12))
@given(g=ot.orthogonal(), data=st.data())
def test_every_candidate_is_invariant(k, g, data):
    sig, _ = INVARIANCE_CASES[k]
    graphs = invariance_graphs(k)
    x = data.draw(ot.rows(sig, n=3))
    signs = ot.reflection_signs(graphs, sig)
    if sig.group == "O3":
        assert np.all(signs == 1), "an O(3) candidate changes sign under reflections"
    ot.assert_invariant(lambda r: evaluate(graphs, r, sig), sig, x, g, rtol=1e-9, parities=signs,
                        scale=lambda r: ot.magnitude_bound(graphs, sig, r), labels=[h.einsum for h in graphs])


@settings(max_examples=scaled(25))
@given(sig=ot.signatures(max_tensors=3, max_rank=4, axial=True), g=ot.orthogonal(), data=st.data())
def test_candidates_of_random_signatures_are_invariant(sig, g, data):
    graphs = list(candidates(sig, 3))
    if not graphs:
        return
    x = data.draw(ot.rows(sig, n=2))
    signs = ot.reflection_signs(graphs, sig)
    if sig.group == "O3":
        assert np.all(signs == 1)
    ot.assert_invariant(lambda r: evaluate(graphs, r, sig), sig, x, g, rtol=1e-9, parities=signs)


@pytest.mark.parametrize("spec", ["a:1,b:1,q:2", "s:0,v:1,q:2,t:3", "v:1,q:2"])
def test_pseudoscalars_flip_and_o3_invariants_do_not(spec):
    so3 = Signature.parse(spec, "SO3")
    graphs = list(candidates(so3, 4 if spec != "v:1,q:2" else 6))
    pseudo = [g for g in graphs if g.has_epsilon]
    plain = [g for g in graphs if not g.has_epsilon]
    assert pseudo and plain
    assert np.all(ot.reflection_signs(pseudo, so3) == -1) and np.all(ot.reflection_signs(plain, so3) == 1)
    x = np.random.default_rng(3).normal(size=(4, so3.dim))
    mirror = np.diag([1.0, 1.0, -1.0]) @ quaternion_matrix(np.array([0.3, 0.5, -0.1, 0.8]) / np.sqrt(0.99))
    before = evaluate(pseudo, x, so3)
    after = evaluate(pseudo, transform_rows(x, so3, mirror), so3)
    assert np.all(np.abs(before) > 1e-8)  # nonzero, so the sign flip is visible
    np.testing.assert_allclose(after, -before, rtol=1e-9)
    np.testing.assert_allclose(evaluate(plain, transform_rows(x, so3, mirror), so3), evaluate(plain, x, so3), rtol=1e-9)
    # the O(3) signature has exactly the plain ones
    o3 = Signature.parse(spec, "O3")
    assert [g.einsum for g in candidates(o3, 4 if spec != "v:1,q:2" else 6)] == [g.einsum for g in plain]


def test_axial_tensors_under_o3_pair_up_with_epsilon():
    """Under O(3), eps contracted with an odd number of axial tensors is a true scalar, and vice versa."""
    sig = Signature.parse("a:1,b:1,c:1,w:1:axial")
    deg3 = {g.einsum for g in graphs_of_degree(sig, 3)}
    assert "i,j,k,ijk->,a,b,w,eps" in deg3  # (a x b) . w: a true scalar
    assert "i,j,k,ijk->,a,b,c,eps" not in deg3  # a triple product of polar vectors: a pseudoscalar
    assert "i,i->,a,w" not in {g.einsum for g in graphs_of_degree(sig, 2)}


# -- laziness, order, validation ----------------------------------------------------------------------


def test_enumeration_is_lazy(monkeypatch):
    calls = []
    real = enum_mod.graphs_of_degree

    def spy(sig, degree):
        calls.append(degree)
        return real(sig, degree)

    monkeypatch.setattr(enum_mod, "graphs_of_degree", spy)
    it = candidates(Signature.from_l_max(4), 6)
    first = next(it)
    assert first.einsum == "->,s" and calls == [1]
    next(it)
    assert calls == [1, 2]
    # selection stops building candidates once the bound is reached (l_max=3: at degree 4)
    monkeypatch.setattr(select_mod, "graphs_of_degree", spy)
    calls.clear()
    basis = select_basis(Signature.from_l_max(3), 6)
    assert basis.complete and max(calls) == 4


@pytest.mark.parametrize("sig", [Signature.from_l_max(4), Signature.from_l_max(3, "SO3"), Signature.parse("a:1,b:1,q:2")],
                         ids=str)
def test_candidates_come_by_degree_then_cost_deterministically(sig):
    first = list(candidates(sig, 4))
    assert [g.einsum for g in first] == [g.einsum for g in candidates(sig, 4)]
    keys = [(g.degree, g.cost, g.key) for g in first]
    assert keys == sorted(keys)
    assert all(g.degree <= 4 for g in first)


@pytest.mark.parametrize("n_max", [0, -1, True, 2.0])
def test_bad_n_max(n_max):
    with pytest.raises(OptinvError, match="n_max"):
        list(candidates(Signature.from_l_max(2), n_max))


# -- the reference evaluator, and the harness itself ---------------------------------------------------


@pytest.mark.parametrize("k", range(len(INVARIANCE_CASES)), ids=[s.describe() for s, _ in INVARIANCE_CASES])
@settings(max_examples=scaled(8))
@given(data=st.data())
def test_reference_evaluator_matches_an_independent_einsum(k, data):
    """``evaluate`` (optimised paths, batched) against a plain einsum of the Cartesian tensors."""
    sig, _ = INVARIANCE_CASES[k]
    graphs = invariance_graphs(k)
    eps = LEVI_CIVITA.astype(float)

    def independent(x):
        T = cartesian(x, sig)
        return np.stack([einsum_value(list(g.labels), g.multiplicity_matrix(), T, eps) for g in graphs], axis=1)

    x = data.draw(ot.rows(sig))
    ot.assert_matches_reference(independent, graphs, sig, x, rtol=1e-12)


def test_the_harness_catches_broken_invariants():
    sig = Signature.from_l_max(3, "SO3")
    graphs = list(candidates(sig, 4))
    signs = ot.reflection_signs(graphs, sig)
    assert np.any(signs == -1)
    x = np.random.default_rng(0).normal(size=(4, sig.dim))
    rot = quaternion_matrix(np.array([0.5, 0.5, 0.5, 0.5]))
    mirror = np.diag([-1.0, 1.0, 1.0])
    good = lambda r: evaluate(graphs, r, sig)  # noqa: E731
    ot.assert_invariant(good, sig, x, rot, parities=signs)
    ot.assert_invariant(good, sig, x, mirror, parities=signs)
    with pytest.raises(AssertionError, match="reflection"):  # pseudoscalars declared as scalars
        ot.assert_invariant(good, sig, x, mirror)

    def wrong_coefficient(r):  # a wrong coefficient in the q->Cartesian map: q01 counted twice
        r = r.copy()
        r[:, sig.slices()["q"].start + 1] *= 2
        return evaluate(graphs, r, sig)

    with pytest.raises(AssertionError, match="not invariant"):
        ot.assert_invariant(wrong_coefficient, sig, x, rot)
    with pytest.raises(AssertionError, match="reference"):
        ot.assert_matches_reference(wrong_coefficient, graphs, sig, x)
    # huge, tiny and zero rows are no reason to fail a correct function
    scaled_rows = np.concatenate([x * 1e6, x * 1e-6, np.zeros((1, sig.dim))])
    ot.assert_invariant(good, sig, scaled_rows, rot, parities=signs, rtol=1e-9)
    ot.assert_matches_reference(good, [g.einsum for g in graphs], sig, scaled_rows)
