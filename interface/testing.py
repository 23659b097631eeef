"""Test support for code that computes rotation invariants: hypothesis strategies and assertions.

This is the one harness that optinv's own test suite uses and that downstream
projects can use in theirs.  It has two halves:

* **Strategies** (need the ``hypothesis`` package, the ``test`` extra:
  ``pip install hypothesis``, a dependency of optinv): :func:`signatures`, :func:`rotations`,
  :func:`reflections`, :func:`orthogonal`, :func:`rows` and
  :func:`integer_rows`.  ``hypothesis`` is imported when a strategy is first
  built, so ``import optinv.testing`` and the assertion helpers work without it;
  calling a strategy without it raises an :class:`ImportError` that says what
  to install.
* **Assertions** (NumPy only): :func:`assert_invariant` rotates or reflects the
  input rows with the engine's exact coefficient action
  (:func:`optinv.algebra.cartesian.transform_rows`, independent of any
  generated code) and checks that the outputs do not change;
  :func:`assert_matches_reference` compares outputs with the engine's NumPy
  reference evaluator (:func:`optinv.algebra.evaluate.evaluate`).

A test a model author might write (``my_invariants`` maps rows ``(N, D)`` to
``(N, K)``)::

    from hypothesis import given
    import optinv.testing as ot
    from optinv.algebra.signature import Signature

    SIG = Signature.from_l_max(3)

    @given(x=ot.rows(SIG), g=ot.orthogonal())
    def test_my_invariants_are_invariant(x, g):
        ot.assert_invariant(my_invariants, SIG, x, g, rtol=1e-9)

Without hypothesis the helpers take any rows and matrix:

>>> import numpy as np
>>> from optinv.algebra.signature import Signature
>>> sig = Signature.parse("v:1")
>>> norm2 = lambda x: (x ** 2).sum(axis=1, keepdims=True)
>>> assert_invariant(norm2, sig, np.array([[1.0, 2.0, 3.0]]), np.diag([1.0, 1.0, -1.0]))
>>> assert_matches_reference(norm2, ["i,i->,v,v"], sig, np.array([[1.0, 2.0, 3.0]]))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from optinv.algebra.cartesian import (
    LEVI_CIVITA,
    quaternion_matrix,
    tensors_of_rows,
    transform_rows,
)
from optinv.algebra.evaluate import evaluate
from optinv.algebra.graphs import ContractionGraph
from optinv.algebra.signature import EPSILON, GROUPS, Signature, TensorSpec, default_name
from optinv.codegen.catalog import HIPPYNN_INVARIANTS

__all__ = [
    "signatures",
    "rotations",
    "reflections",
    "orthogonal",
    "rows",
    "integer_rows",
    "ROW_KINDS",
    "HIPPYNN_INVARIANTS",
    "assert_invariant",
    "assert_matches_reference",
    "reflection_signs",
    "magnitude_bound",
    "as_graphs",
]

#: Kinds of rows that :func:`rows` mixes when ``degenerate=True``.
ROW_KINDS = ("generic", "zero", "one_tensor", "huge", "tiny", "mixed_scale")

HUGE = 1e6
TINY = 1e-6


def _st():
    """``hypothesis.strategies``, or an ImportError that says what to install."""
    try:
        from hypothesis import strategies
    except ImportError as exc:  # pragma: no cover - exercised only without hypothesis
        raise ImportError(
            "optinv.testing strategies need the 'hypothesis' package (a dependency of optinv): "
            "pip install hypothesis; the assertion helpers work without it"
        ) from exc
    return strategies


# -- strategies -------------------------------------------------------------------------


def signatures(
    max_tensors: int = 4,
    max_rank: int = 3,
    groups: Sequence[str] = GROUPS,
    min_tensors: int = 1,
    axial: bool = False,
):
    """Strategy for :class:`~optinv.algebra.signature.Signature` objects.

    Between ``min_tensors`` and ``max_tensors`` tensors of ranks ``0..max_rank``
    (repeats allowed: several channels of one rank), in random row order, named
    after their rank (``s0, v0, v1, q0, ...``), with a group drawn from
    ``groups``.  ``axial=True`` also draws pseudotensors (``"w:1:axial"``).

    >>> strategy = signatures(max_tensors=2, max_rank=1, groups=["O3"])
    >>> sig = strategy.example()  # doctest: +SKIP
    """
    st = _st()
    groups = tuple(groups)
    if not groups:
        raise ValueError("groups: expected at least one of 'O3', 'SO3'")

    @st.composite
    def build(draw):
        ranks = draw(st.lists(st.integers(0, max_rank), min_size=min_tensors, max_size=max_tensors))
        flags = [draw(st.booleans()) for _ in ranks] if axial else [False] * len(ranks)
        seen: dict[int, int] = {}
        specs = []
        for l, is_axial in zip(ranks, flags):
            k = seen.get(l, 0)
            seen[l] = k + 1
            parity = -((-1) ** l) if is_axial else (-1) ** l
            specs.append(TensorSpec(f"{default_name(l)}{k}", l, parity))
        return Signature(tuple(specs), draw(st.sampled_from(groups)))

    return build()


_SPECIAL_ROTATIONS = [
    np.eye(3),
    np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),  # 90 degrees about z
    np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),  # cyclic permutation of axes
    np.diag([1.0, -1.0, -1.0]),  # 180 degrees about x
]
_MIRRORS = [-np.eye(3), np.diag([-1.0, 1.0, 1.0]), np.diag([1.0, -1.0, 1.0]), np.diag([1.0, 1.0, -1.0])]


def rotations():
    """Strategy for proper rotations: float64 ``3x3`` matrices with ``det = +1``.

    Mostly a normalised quaternion with components drawn uniformly from
    ``[-1, 1]`` ("Haar-ish": every rotation is reachable, and the density is
    close to Haar), sometimes an exact special rotation (identity, 90 degrees
    about z, a cyclic permutation of the axes, 180 degrees about x).
    """
    st = _st()
    component = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
    quaternions = st.tuples(component, component, component, component).filter(
        lambda q: float(np.dot(q, q)) > 0.05
    )
    generic = quaternions.map(lambda q: quaternion_matrix(np.asarray(q) / np.linalg.norm(q)))
    return st.one_of(generic, st.sampled_from(_SPECIAL_ROTATIONS).map(np.copy))


def reflections():
    """Strategy for improper orthogonal matrices (``det = -1``): a mirror or ``-I`` times a rotation."""
    st = _st()
    return st.tuples(st.sampled_from(_MIRRORS), rotations()).map(lambda mr: mr[0] @ mr[1])


def orthogonal():
    """Strategy for elements of O(3): proper rotations and improper ones, about half each."""
    st = _st()
    return st.one_of(rotations(), reflections())


def _row_elements(nonzero: bool):
    st = _st()
    magnitude = st.floats(1e-3, 4.0, allow_nan=False, allow_infinity=False)
    signed = st.tuples(magnitude, st.booleans()).map(lambda mb: -mb[0] if mb[1] else mb[0])
    if nonzero:
        return signed
    return st.one_of(signed, st.just(0.0), st.sampled_from([1.0, -1.0, 2.0, 0.5]))


def rows(
    signature: Signature,
    n: int | None = None,
    degenerate: bool = True,
    max_rows: int = 6,
    kinds: Sequence[str] | None = None,
):
    """Strategy for float64 rows ``(N, D)`` of the signature's coefficients.

    ``n`` fixes ``N`` (otherwise ``1..max_rows``).  With ``degenerate=True``
    each row is one of :data:`ROW_KINDS`:

    * ``generic``: entries of magnitude 1e-3..4 or exactly 0, +-1, 2, 0.5;
    * ``zero``: all zeros;
    * ``one_tensor``: every tensor but one set to zero;
    * ``huge`` / ``tiny``: a generic row times 1e6 / 1e-6;
    * ``mixed_scale``: each tensor scaled by its own power of ten in 1e-3..1e3.

    With ``degenerate=False`` every row is generic with no zero entries (the
    kind of point where Jacobian ranks are generic).  ``kinds`` restricts the mix.
    The result is C-contiguous float64.
    """
    st = _st()
    from hypothesis.extra.numpy import arrays

    dim = signature.dim
    slices = list(signature.slices().values())
    if kinds is None:
        kinds = ROW_KINDS if degenerate else ("generic",)
    unknown = set(kinds) - set(ROW_KINDS)
    if unknown:
        raise ValueError(f"kinds: unknown row kinds {sorted(unknown)}; expected some of {ROW_KINDS}")
    kinds = tuple(kinds)
    elements = _row_elements(nonzero=not degenerate)

    @st.composite
    def build(draw):
        count = n if n is not None else draw(st.integers(1, max_rows))
        x = draw(arrays(np.float64, (count, dim), elements=elements))
        x = np.array(x, dtype=np.float64, order="C")
        for r in range(count):
            kind = draw(st.sampled_from(kinds))
            if kind == "zero":
                x[r] = 0.0
            elif kind == "one_tensor":
                keep = draw(st.integers(0, len(slices) - 1))
                for t, sl in enumerate(slices):
                    if t != keep:
                        x[r, sl] = 0.0
            elif kind == "huge":
                x[r] *= HUGE
            elif kind == "tiny":
                x[r] *= TINY
            elif kind == "mixed_scale":
                for sl in slices:
                    x[r, sl] *= 10.0 ** draw(st.integers(-3, 3))
        return x

    return build()


def integer_rows(signature: Signature, n: int | None = None, max_abs: int = 3, max_rows: int = 4):
    """Strategy for small-integer rows ``(N, D)`` (int64), where float evaluation is exact.

    Useful to compare float results with exact (modular or rational) ones.
    """
    st = _st()
    from hypothesis.extra.numpy import arrays

    @st.composite
    def build(draw):
        count = n if n is not None else draw(st.integers(1, max_rows))
        return draw(arrays(np.int64, (count, signature.dim), elements=st.integers(-max_abs, max_abs)))

    return build()


# -- helpers --------------------------------------------------------------------------------


def as_graphs(einsums, signature: Signature) -> list[ContractionGraph]:
    """Contraction graphs from einsum strings (graphs are passed through)."""
    return [e if isinstance(e, ContractionGraph) else ContractionGraph.from_einsum(e, signature) for e in einsums]


def reflection_signs(einsums, signature: Signature) -> np.ndarray:
    """Sign ``(K,)`` that each invariant picks up under an improper ``g`` (``-1``: pseudoscalar).

    It is the product of the parities of the tensor factors (``(-1)**l``, or the
    opposite for axial tensors); the Levi-Civita symbol is a constant and adds no
    sign.  Pass the result as ``parities`` to :func:`assert_invariant`.

    >>> from optinv.algebra.signature import Signature
    >>> reflection_signs(["i,i->,v,v", "i,j,k,ijk->,a,b,v,eps"], Signature.parse("a:1,b:1,v:1", "SO3"))
    array([ 1, -1])
    """
    return np.array([g.parity(signature) for g in as_graphs(einsums, signature)], dtype=np.int64)


def magnitude_bound(einsums, signature: Signature, x) -> np.ndarray:
    """``(N, K)`` bound on the absolute terms of each invariant: the contraction of ``|C| |c|``.

    Every partial sum of any evaluation order, in Cartesian components or expanded
    into monomials of the coefficients, is at most this in absolute value, so
    ``rtol * magnitude_bound`` scales the rounding tolerance correctly even where
    an invariant cancels to (nearly) zero.  The ``rtol`` itself is a convention
    (1e-12 / 1e-5), comfortably above ``depth * eps`` for the programs optinv
    generates, not a bound derived from each program's depth.
    """
    x = np.asarray(x, dtype=np.float64)
    graphs = as_graphs(einsums, signature)
    absolute = tensors_of_rows(np.abs(x), signature, absolute=True)
    eps = np.abs(LEVI_CIVITA).astype(np.float64)
    out = np.empty((x.shape[0], len(graphs)))
    for k, g in enumerate(graphs):
        if g.n_nodes == 1:
            out[:, k] = absolute[g.labels[0]]
            continue
        subs = [sub if lab == EPSILON else "..." + sub for lab, sub in zip(g.labels, g.subscripts)]
        ops = [eps if lab == EPSILON else absolute[lab] for lab in g.labels]
        out[:, k] = np.einsum(",".join(subs) + "->...", *ops, optimize=True)
    return out


def _outputs(fn, x, what: str) -> np.ndarray:
    out = np.asarray(fn(x))
    if out.ndim != 2 or out.shape[0] != x.shape[0]:
        raise AssertionError(f"{what}: fn must map rows (N, D) to (N, K); got shape {out.shape} for N={x.shape[0]}")
    return out.astype(np.float64)


def _sensitivity(fn, x: np.ndarray, seed: int = 0, step: float = 1e-3, directions: int = 3) -> np.ndarray:
    """``(N, K)`` estimate of ``|x| |grad fn|``: central differences along random directions.

    The perturbation of each row has the row's own norm, so the estimate is
    scale-aware (huge and tiny rows get huge and tiny tolerances).
    """
    rng = np.random.default_rng(seed)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    best = None
    for _ in range(directions):
        u = rng.normal(size=x.shape)
        u *= norms / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-300)
        hi = np.asarray(fn((x + step * u).astype(x.dtype)), dtype=np.float64)
        lo = np.asarray(fn((x - step * u).astype(x.dtype)), dtype=np.float64)
        est = np.abs(hi - lo) / (2 * step)
        best = est if best is None else np.maximum(best, est)
    return best


def _fail(title: str, a: np.ndarray, b: np.ndarray, tol: np.ndarray, x: np.ndarray, labels) -> None:
    excess = np.abs(a - b) - tol
    r, k = np.unravel_index(int(np.argmax(excess)), excess.shape)
    bad = int(np.sum(excess > 0))
    name = f" ({labels[k]})" if labels is not None else ""
    raise AssertionError(
        f"{title}: {bad} of {a.size} outputs differ; worst at row {r}, output {k}{name}: "
        f"{a[r, k]!r} vs {b[r, k]!r} (|diff| {abs(a[r, k] - b[r, k]):.3g} > tolerance {tol[r, k]:.3g}); "
        f"row {r} = {np.array2string(x[r], precision=6, max_line_width=10_000)}"
    )


def assert_invariant(
    fn: Callable[[np.ndarray], np.ndarray],
    signature: Signature,
    x,
    g,
    rtol: float = 1e-9,
    parities=None,
    atol: float = 0.0,
    scale=None,
    labels: Sequence[str] | None = None,
) -> None:
    """Assert ``fn(g . x) == parities * fn(x)`` for rows ``x`` ``(N, D)`` and an orthogonal ``g``.

    ``g . x`` is computed by :func:`optinv.algebra.cartesian.transform_rows`, the
    engine's own action on coefficients (axial tensors included), independently of
    ``fn``.  ``parities`` (``K`` entries of +1/-1, default all +1) says which
    outputs are pseudoscalars; it matters only when ``det g < 0``
    (:func:`reflection_signs` computes it for einsum strings).

    Tolerance, per row and output: ``atol + rtol * max(|fn(x)|, |fn(g.x)|, S)``
    where ``S`` is ``scale`` (an ``(N, K)`` array, or a callable taking rows,
    applied to ``x`` and ``g.x``, e.g. ``lambda r: magnitude_bound(einsums, sig, r)``)
    or, by default, an estimate of ``|x| |grad fn|`` from central differences at
    ``x`` and ``g.x``: a
    scale-aware floor that keeps rounding in outputs that cancel to nearly zero
    from failing the test, while a broken ``fn`` (off by a term of the size of
    the output's terms) still fails.  ``x`` keeps its dtype, so float32 kernels
    see float32 rows (use a looser ``rtol`` then).

    >>> import numpy as np
    >>> from optinv.algebra.signature import Signature
    >>> sig = Signature.parse("v:1")
    >>> first = lambda x: x[:, :1]  # not invariant
    >>> assert_invariant(first, sig, np.array([[1.0, 2.0, 3.0]]), np.eye(3)[[1, 2, 0]])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: not invariant under g (det +1): 1 of 1 outputs differ; ...
    """
    x = np.asarray(x)
    if x.dtype.kind in "biu":
        x = x.astype(np.float64)
    if x.ndim != 2 or x.shape[1] != signature.dim:
        raise ValueError(f"x: expected rows of shape (N, {signature.dim}), got {x.shape}")
    g = np.asarray(g, dtype=np.float64)
    if g.shape != (3, 3) or not np.allclose(g @ g.T, np.eye(3), atol=1e-8):
        raise ValueError(f"g: expected an orthogonal 3x3 matrix, got {g!r}")
    det = float(np.linalg.det(g))
    gx = transform_rows(x, signature, g).astype(x.dtype)
    a = _outputs(fn, x, "fn(x)")
    b = _outputs(fn, gx, "fn(g.x)")
    if a.shape != b.shape:
        raise AssertionError(f"fn(x) has shape {a.shape} but fn(g.x) has {b.shape}")
    signs = np.ones(a.shape[1])
    if parities is not None:
        parities = np.asarray(parities, dtype=np.float64).reshape(-1)
        if parities.shape != (a.shape[1],) or not np.all(np.abs(parities) == 1):
            raise ValueError(f"parities: expected {a.shape[1]} entries of +1 or -1, got {parities!r}")
        if det < 0:
            signs = parities
    b = b * signs
    if scale is None:
        S = np.maximum(_sensitivity(fn, x), _sensitivity(fn, gx))
    elif callable(scale):
        S = np.maximum(np.asarray(scale(x), dtype=np.float64), np.asarray(scale(gx), dtype=np.float64))
    else:
        S = np.asarray(scale, dtype=np.float64)
    tol = atol + rtol * np.maximum(np.maximum(np.abs(a), np.abs(b)), S)
    ok = np.abs(a - b) <= tol
    ok |= (a == b)  # equal infinities
    if not np.all(ok):
        what = "not invariant" if det > 0 else "wrong behaviour under reflection"
        _fail(f"{what} under g (det {det:+.0f})", a, b, tol, x, labels)


def assert_matches_reference(
    fn: Callable[[np.ndarray], np.ndarray],
    einsums,
    signature: Signature,
    x,
    rtol: float = 1e-10,
    atol: float = 0.0,
) -> None:
    """Assert that ``fn(x)`` equals the engine's reference evaluation of the einsum strings.

    The reference is :func:`optinv.algebra.evaluate.evaluate` in float64 on the
    same rows (so float32 rows give a float64 reference of the float32 values).
    The tolerance per row and output is ``atol + rtol * max(|ref|, B)`` with
    ``B`` from :func:`magnitude_bound`, a bound on every term of the invariant:
    valid for any evaluation order, including outputs that cancel to zero.

    >>> import numpy as np
    >>> from optinv.algebra.signature import Signature
    >>> sig = Signature.parse("v:1,q:2")
    >>> x = np.arange(8.0).reshape(1, 8)
    >>> twice = lambda x: 2 * (x[:, :3] ** 2).sum(1, keepdims=True)
    >>> assert_matches_reference(twice, ["i,i->,v,v"], sig, x)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: fn(x) differs from the reference evaluator: 1 of 1 outputs differ; ...
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != signature.dim:
        raise ValueError(f"x: expected rows of shape (N, {signature.dim}), got {x.shape}")
    graphs = as_graphs(einsums, signature)
    x64 = x.astype(np.float64)
    ref = evaluate(graphs, x64, signature)
    out = _outputs(fn, x, "fn(x)")
    if out.shape != ref.shape:
        raise AssertionError(
            f"fn(x) has shape {out.shape}, but the reference gives {ref.shape} ({len(graphs)} invariants)"
        )
    bound = magnitude_bound(graphs, signature, x64)
    tol = atol + rtol * np.maximum(np.abs(ref), bound)
    ok = (np.abs(out - ref) <= tol) | (out == ref)
    if not np.all(ok):
        _fail("fn(x) differs from the reference evaluator", out, ref, tol, x64, [g.einsum for g in graphs])
