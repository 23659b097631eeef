"""Contraction graphs: einsum round trip, canonical form vs networkx isomorphism, cost vs brute force."""

import itertools
import random
import string
from functools import lru_cache

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optinv.algebra.candidates import graphs_of_degree
from optinv.algebra.errors import OptinvError
from optinv.algebra.graphs import ContractionGraph, best_contraction_cost, canonical_order
from optinv.algebra.signature import EPSILON, Signature
from budget import scaled


SMALL_SIGNATURES = [
    (Signature.from_l_max(3), 4),
    (Signature.from_l_max(3, "SO3"), 4),
    (Signature.parse("a:1,b:1,q:2", "SO3"), 4),
    (Signature.parse("v:1,w:1:axial,q:2"), 4),
    (Signature.parse("s:0,q:2,l4:4"), 4),
]


@lru_cache(maxsize=None)
def all_graphs(k: int) -> list[ContractionGraph]:
    sig, n_max = SMALL_SIGNATURES[k]
    return [g for d in range(1, n_max + 1) for g in graphs_of_degree(sig, d)]


def case_ids():
    return [f"{sig.describe()}" for sig, _ in SMALL_SIGNATURES]


def to_networkx(labels, mult) -> nx.Graph:
    G = nx.Graph()
    for a, lab in enumerate(labels):
        G.add_node(a, label=lab)
    for a in range(len(labels)):
        for b in range(a + 1, len(labels)):
            if mult[a][b]:
                G.add_edge(a, b, m=mult[a][b])
    return G


def isomorphic(labels1, mult1, labels2, mult2) -> bool:
    return nx.is_isomorphic(
        to_networkx(labels1, mult1),
        to_networkx(labels2, mult2),
        node_match=lambda u, v: u["label"] == v["label"],
        edge_match=lambda e, f: e["m"] == f["m"],
    )


def einsum_of(labels, mult, letters, order) -> str:
    """An einsum string for the graph, with the given index letters and factor order."""
    subs = [[] for _ in labels]
    it = iter(letters)
    n = len(labels)
    for a in range(n):
        for b in range(a + 1, n):
            for _ in range(mult[a][b]):
                ch = next(it)
                subs[a].append(ch)
                subs[b].append(ch)
    return ",".join("".join(subs[o]) for o in order) + "->," + ",".join(labels[o] for o in order)


# -- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize("k", range(len(SMALL_SIGNATURES)), ids=case_ids())
def test_einsum_round_trip(k):
    sig, _ = SMALL_SIGNATURES[k]
    graphs = all_graphs(k)
    assert graphs
    for g in graphs:
        back = ContractionGraph.from_einsum(g.einsum, sig)
        assert back == g and back.key == g.key and back.einsum == g.einsum
        assert g.degree == sum(lab != EPSILON for lab in g.labels)
        assert g.has_epsilon == (EPSILON in g.labels)
        # the einsum string is a full contraction: every letter exactly twice
        lhs = g.einsum.split("->")[0].replace(",", "")
        assert all(lhs.count(ch) == 2 for ch in set(lhs))
        assert [len(s) for s in g.subscripts] == list(g.ranks)


@settings(max_examples=scaled(40))
@given(k=st.integers(0, len(SMALL_SIGNATURES) - 1), data=st.data())
def test_relabelled_and_reordered_einsum_gives_the_same_graph(k, data):
    sig, _ = SMALL_SIGNATURES[k]
    g = data.draw(st.sampled_from(all_graphs(k)))
    n_edges = sum(m for _, _, m in g.edges)
    letters = data.draw(st.permutations(list(string.ascii_letters)))[:n_edges]
    order = data.draw(st.permutations(range(g.n_nodes)))
    text = einsum_of(g.labels, g.multiplicity_matrix(), letters, order)
    # also shuffle letters inside each factor: tensors are symmetric
    lhs, rhs = text.split("->")
    rng = random.Random(data.draw(st.integers(0, 2**16)))
    lhs = ",".join("".join(rng.sample(sub, len(sub))) for sub in lhs.split(","))
    assert ContractionGraph.from_einsum(f"{lhs}->{rhs}", sig) == g


def test_hippynn_aliases_and_names():
    sig = Signature.from_l_max(3)
    a = ContractionGraph.from_einsum("ij,ijk,kab,ab->,two,three,three,two", sig)
    b = ContractionGraph.from_einsum("ab,abk,kij,ij->,q,t,t,q", sig)
    assert a == b and a.labels == ("q", "q", "t", "t")
    assert ContractionGraph.from_einsum("->,zero", sig).einsum == "->,s"


# -- canonical form vs networkx isomorphism ------------------------------------------------------

NODE_LABELS = ["a", "b"]


@st.composite
def labelled_multigraphs(draw, n_min=2, n_max=5):
    n = draw(st.integers(n_min, n_max))
    labels = [draw(st.sampled_from(NODE_LABELS)) for _ in range(n)]
    mult = [[0] * n for _ in range(n)]
    for a in range(n):
        for b in range(a + 1, n):
            mult[a][b] = mult[b][a] = draw(st.integers(0, 2))
    return labels, mult


def canonical_free(labels, mult):
    """The engine's canonical form of any labelled multigraph (no degree constraint)."""
    order = {"a": 0, "b": 1}
    perm = canonical_order(labels, mult, order)
    n = len(labels)
    return tuple(labels[p] for p in perm), tuple(mult[perm[a]][perm[b]] for a in range(n) for b in range(n))


@settings(max_examples=scaled(80))
@given(g1=labelled_multigraphs(), g2=labelled_multigraphs(), data=st.data())
def test_canonical_form_decides_isomorphism_like_networkx(g1, g2, data):
    """Canonical forms agree exactly for isomorphic labelled multigraphs (networkx as reference)."""
    labels1, mult1 = g1
    # a random relabelling of g1 must give the same canonical form
    perm = data.draw(st.permutations(range(len(labels1))))
    labels_p = [labels1[p] for p in perm]
    mult_p = [[mult1[perm[a]][perm[b]] for b in range(len(perm))] for a in range(len(perm))]
    assert canonical_free(labels1, mult1) == canonical_free(labels_p, mult_p)
    labels2, mult2 = g2
    if data.draw(st.booleans()):  # a near miss: the relabelled g1 with one edge or one label edited
        labels2, mult2 = list(labels_p), [row[:] for row in mult_p]
        n = len(labels2)
        if data.draw(st.booleans()):
            a, b = data.draw(st.sampled_from([(a, b) for a in range(n) for b in range(a + 1, n)]))
            mult2[a][b] = mult2[b][a] = data.draw(st.sampled_from([m for m in range(3) if m != mult2[a][b]]))
        else:
            a = data.draw(st.integers(0, n - 1))
            labels2[a] = "b" if labels2[a] == "a" else "a"
    same = canonical_free(labels1, mult1) == canonical_free(labels2, mult2)
    assert same == isomorphic(labels1, mult1, labels2, mult2)


def test_canonical_form_on_regular_graphs_that_colour_refinement_cannot_split():
    """Two 2-regular graphs on 6 nodes (a hexagon vs two triangles) look alike to 1-WL."""
    hexagon = [[0] * 6 for _ in range(6)]
    for a in range(6):
        b = (a + 1) % 6
        hexagon[a][b] = hexagon[b][a] = 1
    triangles = [[0] * 6 for _ in range(6)]
    for tri in ((0, 1, 2), (3, 4, 5)):
        for a, b in itertools.combinations(tri, 2):
            triangles[a][b] = triangles[b][a] = 1
    labels = ["a"] * 6
    assert not isomorphic(labels, hexagon, labels, triangles)
    assert canonical_free(labels, hexagon) != canonical_free(labels, triangles)
    sig = Signature.parse("q:2")
    hexa = ContractionGraph.from_einsum("ij,jk,kl,lm,mn,ni->,q,q,q,q,q,q", sig)
    shuffled = ContractionGraph.from_einsum("kl,ij,mn,jk,ni,lm->,q,q,q,q,q,q", sig)
    assert hexa == shuffled


# -- parse errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, group, needle",
    [
        ("i,i->,v,x", "O3", "unknown tensor name 'x'"),
        ("ij,i->,v,v", "O3", "rank 1 but subscripts 'ij'"),
        ("i,j->,v,v", "O3", "not a full contraction"),
        ("i,i->i,v,v", "O3", "not a full contraction"),
        ("ij,ij,ij->,q,q,q", "O3", "appears 3 times"),
        ("ii->,q", "O3", "trace"),
        ("i,j,k,ijk->,v,v,v,eps", "O3", "pseudoscalar"),
        ("i,i,j,j->,v,v,v,v", "O3", "disconnected"),
        ("i,i->,v", "O3", "subscript groups"),
        ("i,i,v,v", "O3", "subscripts->"),
        ("1,1->,v,v", "O3", "letters"),
        ("ijk,ijl,klm,m->,eps,eps,eps,v", "SO3", "at most 2"),
    ],
)
def test_bad_einsum_strings_are_refused(text, group, needle):
    sig = Signature.from_l_max(3, group)
    with pytest.raises(OptinvError, match=needle.replace("(", r"\(")):
        ContractionGraph.from_einsum(text, sig)


# -- cost vs brute force over all pairwise contraction orders ----------------------------------------


def brute_force_cost(mult) -> int:
    """Minimum over every sequence of pairwise merges of sum 3**(indices touched by the merge)."""
    n = len(mult)
    if n == 1:
        return 1
    edges = []
    for a in range(n):
        for b in range(a + 1, n):
            edges += [(a, b)] * mult[a][b]
    # a part is a frozenset of nodes; its open indices are edge ids with exactly one end inside
    def open_ids(part):
        return frozenset(e for e, (a, b) in enumerate(edges) if (a in part) != (b in part))

    best = None

    def walk(parts, acc):
        nonlocal best
        if best is not None and acc >= best:
            return
        if len(parts) == 1:
            best = acc
            return
        for i, j in itertools.combinations(range(len(parts)), 2):
            touched = open_ids(parts[i]) | open_ids(parts[j])
            merged = parts[i] | parts[j]
            rest = [p for t, p in enumerate(parts) if t not in (i, j)]
            walk(rest + [merged], acc + 3 ** len(touched))

    walk([frozenset([a]) for a in range(n)], 0)
    return best


@pytest.mark.parametrize("k", range(len(SMALL_SIGNATURES)), ids=case_ids())
def test_cost_is_the_minimum_over_all_pairwise_contraction_orders(k):
    checked = 0
    for g in all_graphs(k):
        if g.n_nodes <= 5:
            assert g.cost == brute_force_cost(g.multiplicity_matrix()), g.einsum
            checked += 1
    assert checked > 0


def test_cost_examples():
    sig = Signature.from_l_max(3)
    assert ContractionGraph.from_einsum("->,s", sig).cost == 1
    assert ContractionGraph.from_einsum("i,i->,v,v", sig).cost == 3
    # q.q then with q: 27 (three indices) + 9 (two indices)
    assert ContractionGraph.from_einsum("ij,ik,jk->,q,q,q", sig).cost == 36
    assert best_contraction_cost([[0, 2], [2, 0]]) == 9
