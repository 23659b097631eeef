"""What to generate: a typed :class:`Request`, built once from the command line or the API.

A request names the signature (``l_max`` shorthand or explicit ``tensors``, and
the group), where the invariants come from (``n_max``: select a basis; or
``invariants``: compile these einsum strings as given), the targets, and
whether the runtime is bundled into the package.  Its :meth:`Request.to_dict`
is what a generated module records in ``metadata.json`` and what ``optinv
verify`` regenerates from; :meth:`Request.from_dict` reads it back.

>>> r = Request.from_dict({"l_max": 2, "n_max": 4})
>>> r.signature.dim, r.to_dict()
(9, {'group': 'O3', 'l_max': 2, 'n_max': 4})
>>> Request.from_dict({"l_max": 2})
Traceback (most recent call last):
...
optinv.algebra.errors.OptinvError: request: expected exactly one of n_max or invariants
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from optinv.algebra.errors import OptinvError
from optinv.algebra.signature import Signature, normalise_group
from optinv.codegen.targets import DEFAULT_TARGETS, get_target

_KEYS = {"group", "l_max", "tensors", "n_max", "invariants", "seed", "targets", "bundle_runtime", "flexible", "strata",
         "search_nodes"}


def _int_or_none(data: dict, key: str, low: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise OptinvError(f"request: {key} must be an integer >= {low}, got {value!r}")
    return value


def _bool(data: dict, key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise OptinvError(f"request: {key} must be true or false, got {value!r}")
    return value


def _str_or_none(data: dict, key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise OptinvError(f"request: {key} must be a string, got {value!r}")
    return value


@dataclass(frozen=True)
class Request:
    """One generated package's recipe (see the module docstring); immutable, validated on creation."""

    group: str = "O3"
    l_max: int | None = None
    tensors: str | None = None
    n_max: int | None = None
    invariants: tuple[str, ...] | None = None
    seed: int | None = None
    targets: tuple[str, ...] = DEFAULT_TARGETS
    bundle_runtime: bool = True
    # stratum-aware selection (optinv.algebra.flexible): strata spec (None: the whole catalogue), node budget
    flexible: bool = False
    strata: str | None = None
    search_nodes: int | None = None
    # the Signature these fields describe, when the caller has parsed it already (it is not parsed again)
    parsed_signature: Signature | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "group", normalise_group(self.group))
        if self.l_max is not None and self.tensors is not None:
            raise OptinvError("request: give either l_max or tensors, not both")
        if (self.n_max is None) == (self.invariants is None):
            raise OptinvError("request: expected exactly one of n_max or invariants")
        if self.invariants is not None:
            object.__setattr__(self, "invariants", tuple(self.invariants))
        object.__setattr__(self, "targets", tuple(self.targets))
        for name in self.targets:
            get_target(name)
        if "c" not in self.targets:
            raise OptinvError("targets: the 'c' target is required (NumPy arrays and the torch adapter run on it)")
        if self.flexible and self.n_max is None:
            raise OptinvError("request: flexible goes with n_max (a search), not with a list of invariants")
        if (self.strata is not None or self.search_nodes is not None) and not self.flexible:
            raise OptinvError("request: strata and search_nodes go with flexible")

    @classmethod
    def from_dict(cls, data: dict) -> "Request":
        """Read a recorded request (as in a module's ``metadata.json``); unknown keys are refused."""
        if not isinstance(data, dict):
            raise OptinvError(f"request: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise OptinvError(f"request: unknown field(s) {', '.join(unknown)}")
        invariants = data.get("invariants")
        if invariants is not None and (not isinstance(invariants, list | tuple)
                                       or not all(isinstance(s, str) for s in invariants)):
            raise OptinvError("request: invariants must be a list of einsum strings")
        tensors = data.get("tensors")
        if tensors is not None and not isinstance(tensors, str):
            raise OptinvError(f"request: tensors must be a string like 'a:1,b:1', got {tensors!r}")
        return cls(
            group=data.get("group", "O3"),
            l_max=_int_or_none(data, "l_max", 0),
            tensors=tensors,
            n_max=_int_or_none(data, "n_max", 1),
            invariants=invariants,
            seed=_int_or_none(data, "seed", 0),
            targets=tuple(data.get("targets", DEFAULT_TARGETS)),
            bundle_runtime=bool(data.get("bundle_runtime", True)),
            flexible=_bool(data, "flexible"),
            strata=_str_or_none(data, "strata"),
            search_nodes=_int_or_none(data, "search_nodes", 0),
        )

    @classmethod
    def for_signature(cls, signature: Signature, **fields) -> "Request":
        """The request that rebuilds ``signature`` exactly (the l_max shorthand keeps its aliases)."""
        l_max = max(t.rank for t in signature.tensors)
        if signature == Signature.from_l_max(l_max, signature.group) and signature.aliases:
            return cls(group=signature.group, l_max=l_max, parsed_signature=signature, **fields)
        tensors = ",".join(f"{t.name}:{t.rank}" + (":axial" if t.axial else "") for t in signature.tensors)
        return cls(group=signature.group, tensors=tensors, parsed_signature=signature, **fields)

    @cached_property
    def signature(self) -> Signature:
        if self.parsed_signature is not None:
            return self.parsed_signature
        if self.tensors is not None:
            return Signature.parse(self.tensors, self.group)
        return Signature.from_l_max(3 if self.l_max is None else self.l_max, self.group)

    @property
    def selection_seed(self) -> int:
        return 0 if self.seed is None else self.seed

    def to_dict(self) -> dict:
        """The recorded form: only the fields given (defaults left out), so old records stay equal."""
        out: dict = {"group": self.group}
        if self.tensors is not None:
            out["tensors"] = self.tensors
        elif self.l_max is not None:
            out["l_max"] = self.l_max
        if self.n_max is not None:
            out["n_max"] = self.n_max
        else:
            out["invariants"] = list(self.invariants)
        if self.seed is not None:
            out["seed"] = self.seed
        if self.targets != DEFAULT_TARGETS:
            out["targets"] = list(self.targets)
        if not self.bundle_runtime:
            out["bundle_runtime"] = False
        if self.flexible:
            out["flexible"] = True
        if self.strata is not None:
            out["strata"] = self.strata
        if self.search_nodes is not None:
            out["search_nodes"] = self.search_nodes
        return out
