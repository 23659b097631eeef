"""HIP-HOP-NN inside hippynn for any ``l_max`` and ``n_max``, on optinv's invariants.

hippynn 0.1.3 builds HIP-HOP-NN only for ``l_max <= 3`` and ``n_max <= 4``: its
invariant layer is hand-written, and its tensor extractor stops at rank 3.  This
module gives the same network for any setting, without patching hippynn:

>>> from optinv.hippynn import HipHopNNModule                      # doctest: +SKIP
>>> net = HipHopNNModule(n_features=20, n_sensitivities=20, dist_soft_min=0.7,
...                      dist_soft_max=4.0, dist_hard_max=5.0, n_atom_layers=2,
...                      n_interaction_layers=1, possible_species=[0, 1, 6],
...                      l_max=5, n_max=4)                         # doctest: +SKIP

- :class:`HipHopNNModule` takes exactly the arguments of
  ``hippynn.networks.hiphop.HipHopNNModule`` plus ``basis=``, and has its
  forward signature (it is a subclass);  :class:`HipHopnn` is the matching
  graph node (``module_kwargs`` as for hippynn's ``HipHopnn``).
- ``basis``: ``None`` or ``"generic"`` (optinv's minimal complete set for
  ``(l_max, n_max)``), ``"hippynn"`` (hippynn's own hand-written lists, in its
  order, ``l_max <= 3`` and ``n_max <= 4`` only: weights trained by hippynn load
  and give the same outputs), ``"flexible"`` (optinv's stratum-aware set: also
  at the maximum rank on symmetric environments, see ``optinv basis
  --flexible``; (3,4): 14 invariants), a :class:`~optinv.algebra.basis.Basis`, or a list
  of einsum strings over ``s, v, q, t, l4, l5, ...`` (hippynn's names ``zero``,
  ``one``, ... accepted).
- State dicts: the keys of hippynn's network are kept (``tensor_extractor.pmaps.*``
  and ``...invars.cmaps.*``), so ``load_state_dict(strict=True)`` works both
  ways between hippynn and this module when the invariant lists have the same
  length.  Those buffers are kept for compatibility only: the computation uses
  exact constants (below), whatever values a checkpoint brings.
- Precision: hippynn computes its projection constants once, at import, in the
  torch default dtype (float32 unless it was changed before ``import
  hippynn``), so a float64 hippynn model carries float32-rounded constants.  The
  tensor extractor here derives its constants in exact rational arithmetic from
  :mod:`optinv.algebra.cartesian` and rounds them once, to the dtype of the
  input, at call time: a float64 model is float64-exact, whatever the default
  dtype was at import.
- Pickling: the layer stores its invariant list, not the generated module; a
  fresh process that unpickles a model finds (or compiles, into the per-user
  cache) the kernels itself on first use.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import os
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from math import factorial
from pathlib import Path

import numpy as np
import torch

from hippynn.graphs.nodes.networks import HipHopnn as _HippynnHipHopnnNode
from hippynn.layers.hiplayers.interactions import HOPInteractionLayer as _HippynnHOPLayer
from hippynn.layers.hiplayers.interactions import InteractLayer as _HippynnInteractLayer
from hippynn.networks.hiphop import HipHopNNModule as _HippynnHipHopNNModule
from hippynn.networks.hipnn import Hipnn as _HippynnHipnn

import optinv
from optinv.algebra.basis import Basis
from optinv.algebra.flexible import select_flexible_basis
from optinv.algebra.cartesian import coefficient_map
from optinv.algebra.errors import OptinvError
from optinv.algebra.select import parse_einsum_list
from optinv.algebra.signature import Signature
from optinv.codegen.catalog import HIPPYNN_INVARIANTS

__all__ = [
    "HipHopNNModule",
    "HipHopnn",
    "HOPInteractionLayer",
    "HopInvariantLayer",
    "TensorExtractor",
    "InvariantSet",
    "resolve_basis",
    "hippynn_invariants",
]

# Largest settings accepted: beyond these, compiling the basis takes minutes.
MAX_L = 6
MAX_N = 6


def _check_setting(l_max, n_max) -> None:
    for name, value, top, low in (("l_max", l_max, MAX_L, 0), ("n_max", n_max, MAX_N, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"{name}: expected an integer, got {value!r}")
        if not low <= value <= top:
            raise ValueError(f"{name}={value} is not supported: expected {low} <= {name} <= {top}")


# -- which invariants ----------------------------------------------------------------------


@dataclass(frozen=True)
class InvariantSet:
    """The invariants of one HIP-HOP-NN layer: plain data, so it pickles anywhere."""

    l_max: int
    n_max: int
    einsums: tuple[str, ...]  # canonical einsum strings, in output order
    origin: str  # "generic", "hippynn", "flexible" or "user"

    def __len__(self) -> int:
        return len(self.einsums)


def _canonical(einsums, l_max: int) -> tuple[str, ...]:
    sig = Signature.from_l_max(l_max)
    try:
        parsed = parse_einsum_list(list(einsums), sig)
    except OptinvError as exc:
        raise ValueError(f"basis: not a valid invariant list for l_max={l_max}: {exc}") from None
    return tuple(g.einsum for _, g in parsed), tuple(g.degree for _, g in parsed)


def hippynn_invariants(l_max: int, n_max: int) -> tuple[str, ...]:
    """hippynn's own list at ``(l_max, n_max)``, in its order (its ``calc_invariants``).

    hippynn computes, of its 13 invariants for ``l_max = 3, n_max = 4``, those
    with at most ``n_max`` factors of rank at most ``l_max``.
    """
    _check_setting(l_max, n_max)
    if l_max > 3 or n_max > 4:
        raise ValueError(
            f"basis='hippynn': hippynn has invariants only for l_max <= 3 and n_max <= 4, "
            f"got l_max={l_max}, n_max={n_max}; use basis='generic' (optinv's) instead")
    einsums, degrees = _canonical(HIPPYNN_INVARIANTS, 3)
    sig = Signature.from_l_max(3)
    keep = []
    for text, degree in zip(einsums, degrees):
        labels = text.split("->,", 1)[1].split(",")
        if degree <= n_max and all(sig.tensor(lab).rank <= l_max for lab in labels):
            keep.append(text)
    return tuple(keep)


def resolve_basis(l_max: int, n_max: int, basis=None) -> InvariantSet:
    """Turn a ``basis=`` argument into the list of invariants of a layer."""
    _check_setting(l_max, n_max)
    if isinstance(basis, InvariantSet):
        if (basis.l_max, basis.n_max) != (l_max, n_max):
            raise ValueError(f"basis: made for l_max={basis.l_max}, n_max={basis.n_max}, "
                             f"not l_max={l_max}, n_max={n_max}")
        return basis
    if basis is None or (isinstance(basis, str) and basis == "generic"):
        module = _generic_module(l_max, n_max)
        einsums, _ = _canonical(module.EINSUMS, l_max)
        return InvariantSet(l_max, n_max, einsums, "generic")
    if isinstance(basis, str) and basis == "hippynn":
        return InvariantSet(l_max, n_max, hippynn_invariants(l_max, n_max), "hippynn")
    if isinstance(basis, str) and basis == "flexible":
        return InvariantSet(l_max, n_max, _flexible_einsums(l_max, n_max), "flexible")
    if isinstance(basis, str):
        raise ValueError(f"basis: expected 'generic', 'hippynn', 'flexible', a Basis or a list of einsum strings, "
                         f"got {basis!r}")
    if isinstance(basis, Basis):
        if basis.signature != Signature.from_l_max(l_max):
            raise ValueError(f"basis: its signature {basis.signature} is not that of l_max={l_max} (s, v, q, t, ...)")
        einsums = basis.einsums
    elif isinstance(basis, (list, tuple)) and all(isinstance(e, str) for e in basis):
        einsums = list(basis)
    else:
        raise TypeError(f"basis: expected 'generic', 'hippynn', 'flexible', a Basis or a list of einsum strings, "
                        f"got {type(basis).__name__}")
    canonical, degrees = _canonical(einsums, l_max)
    if max(degrees) > n_max:
        worst = canonical[degrees.index(max(degrees))]
        raise ValueError(f"basis: {worst!r} has {max(degrees)} factors, more than n_max={n_max}")
    return InvariantSet(l_max, n_max, canonical, "user")


@lru_cache(maxsize=None)
def _flexible_einsums(l_max: int, n_max: int) -> tuple[str, ...]:
    # The search is deterministic (a node budget, not a clock), so every process
    # that asks for the same setting gets the same list, in the same order.
    basis = select_flexible_basis(Signature.from_l_max(l_max), n_max)
    return _canonical(basis.einsums, l_max)[0]


# -- finding (or compiling) the kernels ----------------------------------------------------


def _cache_dir() -> Path:
    env = os.environ.get("OPTINV_CACHE_DIR")
    root = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "optinv"
    return root / "modules"


def _locked(name: str):
    # Several processes (DDP ranks, Dask workers) may compile the same module at once.
    from filelock import FileLock

    _cache_dir().mkdir(parents=True, exist_ok=True)
    return FileLock(str(_cache_dir() / f"{name}.lock"))


def _generic_module(l_max: int, n_max: int):
    from optinv.codegen.package import hop_module

    with _locked(f"hop_l{l_max}_n{n_max}"):
        return hop_module(l_max, n_max)


def _list_module(einsums: tuple[str, ...], l_max: int):
    """A generated module for exactly this list: committed if one matches, else compiled once."""
    from optinv.codegen.package import compile_module, load_module
    from optinv.codegen.catalog import committed_modules

    for name in committed_modules():
        module = importlib.import_module(f"optinv.generated.{name}")
        if module.D == (l_max + 1) ** 2 and _canonical(module.EINSUMS, l_max)[0] == einsums:
            return module
    digest = hashlib.sha256(json.dumps([l_max, list(einsums), optinv.__version__]).encode()).hexdigest()[:16]
    name = f"hiphop_l{l_max}_{digest}"
    package = _cache_dir() / name
    with _locked(name):
        meta = package / "metadata.json"
        fresh = meta.is_file() and json.loads(meta.read_text()).get("optinv_version") == optinv.__version__
        if not fresh:
            compile_module(list(einsums), Signature.from_l_max(l_max), name, _cache_dir())
        return load_module(package)


@lru_cache(maxsize=None)
def _invariant_function(invariants: InvariantSet):
    """``torch_invariants`` of the generated module computing exactly ``invariants``."""
    module = None
    if invariants.origin == "generic":
        module = _generic_module(invariants.l_max, invariants.n_max)
        if _canonical(module.EINSUMS, invariants.l_max)[0] != invariants.einsums:
            module = None  # pickled under another selection: keep the model's own list
    if module is None:
        module = _list_module(invariants.einsums, invariants.l_max)
    return module.torch_invariants


# -- layers --------------------------------------------------------------------------------


class _ConstantList(torch.nn.Module):
    """Buffers named ``0, 1, ...``: the state-dict keys of hippynn's ``ParameterList`` of constants."""

    def __init__(self, arrays):
        super().__init__()
        dtype = torch.get_default_dtype()  # like every other weight of the network
        for k, a in enumerate(arrays):
            self.register_buffer(str(k), torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype))

    def __len__(self) -> int:
        return len(self._buffers)


@lru_cache(maxsize=None)
def _exact_projector(l: int) -> tuple[tuple[Fraction, ...], ...]:
    """``P = C (C^T C)^{-1}`` exactly: hippynn's ``pinv(C).T``, shape ``(3^l, 2l+1)``.

    ``P`` contracted with ``r^(x)l`` gives the free coefficients of the
    symmetric traceless part of ``r^(x)l`` (``C`` is the exact coefficient map).
    """
    import sympy

    C = sympy.Matrix(coefficient_map(l).reshape(3**l, 2 * l + 1).tolist())
    P = C * (C.T * C).inv()
    return tuple(tuple(Fraction(int(v.p), int(v.q)) for v in P.row(i)) for i in range(P.rows))


def projector(l: int) -> np.ndarray:
    """hippynn's ``pmaps[l]`` (shape ``(3,)*l + (2l+1,)``), correctly rounded to float64."""
    if l == 0:
        return np.ones((1, 1))
    P = np.array([[float(v) for v in row] for row in _exact_projector(l)], dtype=np.float64)
    return P.reshape((3,) * l + (2 * l + 1,))


@lru_cache(maxsize=None)
def _monomial_tables(l: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rank ``l >= 2``: monomials of degree ``l`` in ``r`` as (parent monomial, last factor),
    and the float64 matrix ``M`` with ``coefficients = monomials @ M``.

    ``M[t] = (number of orderings of t) * P[t]``: the projector summed over the
    index tuples that give the same monomial, computed exactly, rounded once.
    """
    parents = {t: k for k, t in enumerate(itertools.combinations_with_replacement(range(3), l - 1))}
    tuples = list(itertools.combinations_with_replacement(range(3), l))
    exact = _exact_projector(l)
    rows = []
    for t in tuples:
        count = factorial(l)
        for v in set(t):
            count //= factorial(t.count(v))
        flat = int(np.ravel_multi_index(t, (3,) * l))
        rows.append([float(count * p) for p in exact[flat]])
    parent = np.array([parents[t[:-1]] for t in tuples], dtype=np.int64)
    last = np.array([t[-1] for t in tuples], dtype=np.int64)
    return parent, last, np.array(rows, dtype=np.float64)


class TensorExtractor(torch.nn.Module):
    """hippynn's ``TensorExtractor`` for any ``l_max``: ``(s, v, q, t, l4, ...)`` of unit vectors.

    Rank ``l`` gives the ``2l+1`` free coefficients (optinv's ``hippynn``
    convention) of the symmetric traceless part of ``r^(x)l``, computed as
    monomials of ``r`` times an exact constant matrix.
    """

    def __init__(self, l_max: int):
        super().__init__()
        _check_setting(l_max, 1)
        self.l_max = l_max
        # same keys as hippynn's extractor ('pmaps.0', ...); not used by forward
        self.pmaps = _ConstantList([projector(l) for l in range(l_max + 1)])
        self._constants: dict = {}

    def _tables(self, l: int, like: torch.Tensor):
        key = (l, like.device, like.dtype)
        if key not in self._constants:
            parent, last, M = _monomial_tables(l)
            self._constants[key] = (torch.as_tensor(parent, device=like.device), torch.as_tensor(last, device=like.device),
                                    torch.as_tensor(M, dtype=like.dtype, device=like.device))
        return self._constants[key]

    def forward(self, rhats: torch.Tensor):
        out = [torch.ones(rhats.shape[0], 1, device=rhats.device, dtype=rhats.dtype)]
        if self.l_max >= 1:
            out.append(rhats)
        monomials = rhats
        for l in range(2, self.l_max + 1):
            parent, last, M = self._tables(l, rhats)
            monomials = monomials[:, parent] * rhats[:, last]
            out.append(monomials @ M)
        return tuple(out)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_constants"] = {}
        return state

    def extra_repr(self) -> str:
        return f"l_max={self.l_max}"


class HopInvariantLayer(torch.nn.Module):
    """Invariants of tensor features ``(n, (l_max+1)^2)`` -> ``(n, K)`` by optinv's kernels.

    Same arguments and keys as hippynn's ``HopInvariantLayer(n_max, l_max)``, plus ``basis``.
    """

    def __init__(self, n_max: int, l_max: int, basis=None):
        super().__init__()
        self.invariants = resolve_basis(l_max, n_max, basis)
        self.l_max = l_max
        self.n_max = n_max
        self.n_invariants = len(self.invariants)
        # hippynn keeps its coefficient maps 0..3 here ('cmaps.0', ...); not used by forward
        self.cmaps = _ConstantList([np.ones((1, 1))] + [coefficient_map(l) for l in range(1, max(3, l_max) + 1)])

    def forward(self, tensor_features: torch.Tensor) -> torch.Tensor:
        return _invariant_function(self.invariants)(tensor_features)

    def extra_repr(self) -> str:
        return f"n_max={self.n_max}, l_max={self.l_max}, basis={self.invariants.origin}, n_invariants={self.n_invariants}"


class HOPInteractionLayer(_HippynnHOPLayer):
    """hippynn's HIP-HOP interaction layer (its forward) with :class:`HopInvariantLayer`."""

    def __init__(self, *args, n_max, l_max, group_norm, group_norm_eps, basis=None, **kwargs):
        # hippynn's own __init__ refuses l_max > 3; the base layer builds the shared weights.
        _HippynnInteractLayer.__init__(self, *args, **kwargs)
        invars = HopInvariantLayer(n_max=n_max, l_max=l_max, basis=basis)
        self.n_invariants = invars.n_invariants
        mixing_weights = torch.zeros(self.nf_out, self.n_invariants, self.nf_out)
        self.invars = invars
        self.mixing_weights = torch.nn.Parameter(mixing_weights)
        torch.nn.init.xavier_normal_(self.mixing_weights)
        if group_norm:
            self.group_norm = torch.nn.GroupNorm(self.n_invariants, self.n_invariants * self.nf_out,
                                                 eps=group_norm_eps, affine=True)
        else:
            self.group_norm = None


class HipHopNNModule(_HippynnHipHopNNModule):
    """HIP-HOP-NN for any ``l_max``, ``n_max`` and ``basis``; hippynn's arguments and forward."""

    _interaction_class = HOPInteractionLayer
    _interaction_kwargs = ("l_max", "n_max", "group_norm", "group_norm_eps", "basis")

    def __init__(self, *args, l_max=3, n_max=4, group_norm=True, group_norm_eps=1e-5, basis=None, **kwargs):
        invariants = resolve_basis(l_max, n_max, basis)  # once for all layers
        # hippynn's HipHopNNModule.__init__ builds its rank-3 extractor: skip to Hipnn's.
        _HippynnHipnn.__init__(self, *args, l_max=l_max, n_max=n_max, group_norm=group_norm,
                               group_norm_eps=group_norm_eps, basis=invariants, **kwargs)
        self.l_max = l_max
        self.n_max = n_max
        self.invariants = invariants
        self.tensor_extractor = TensorExtractor(l_max=l_max)

    def extra_repr(self) -> str:
        return f"n_max={self.n_max}, l_max={self.l_max}, basis={self.invariants.origin}, n_invariants={len(self.invariants)}"


class HipHopnn(_HippynnHipHopnnNode):
    """Graph node for :class:`HipHopNNModule`: use as hippynn's ``HipHopnn`` (``basis`` in ``module_kwargs``)."""

    _auto_module_class = HipHopNNModule
