"""Signatures: the rotation-covariant input tensors of a model and their row layout.

A :class:`Signature` lists named irreducible tensors (rank ``l``: symmetric,
traceless, ``2l+1`` coefficients) and the symmetry group.  It fixes the input
layout: one row of ``D = sum(2l+1)`` coefficients, tensors concatenated in
signature order.

>>> sig = Signature.from_l_max(2)
>>> [t.name for t in sig.tensors], sig.dim
(['s', 'v', 'q'], 9)
>>> Signature.parse("a:1,b:1,q:2").dim
11
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from optinv.algebra.errors import OptinvError
from optinv.algebra.group import GROUPS as GROUP_BY_NAME
from optinv.algebra.group import Group

# Names used by the --l-max shorthand, as in HIP-HOP-NN (s, v, q, t), then lN.
_SHORT_NAMES = ["s", "v", "q", "t"]
# hippynn's own names for the same tensors; accepted as aliases in einsum strings.
WORD_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight"]
EPSILON = "eps"  # reserved name of the Levi-Civita symbol in einsum strings
GROUPS = tuple(GROUP_BY_NAME)  # ("O3", "SO3")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_RANK = 12


def default_name(l: int) -> str:
    """Name of the rank-``l`` tensor in the ``--l-max`` shorthand (s, v, q, t, l4, l5, ...)."""
    return _SHORT_NAMES[l] if l < len(_SHORT_NAMES) else f"l{l}"


def normalise_group(group: str) -> Group:
    """The :class:`~optinv.algebra.group.Group` named ``group`` (a ``str``: ``"O3"`` or ``"SO3"``)."""
    return Group.of(group)


@dataclass(frozen=True)
class TensorSpec:
    """One input tensor: a name, a rank ``l`` and its parity under inversion.

    ``parity`` is the sign the tensor picks up under the inversion ``-I``:
    ``(-1)**l`` for ordinary (polar) tensors, the opposite for axial ones.
    """

    name: str
    rank: int
    parity: int = 0  # 0 means "natural": (-1)**rank

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise OptinvError(f"tensor name: expected an identifier, got {self.name!r}")
        if self.name == EPSILON:
            raise OptinvError(f"tensor name: {EPSILON!r} is reserved for the Levi-Civita symbol")
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 0:
            raise OptinvError(f"rank of tensor {self.name!r}: expected an integer >= 0, got {self.rank!r}")
        if self.rank > MAX_RANK:
            raise OptinvError(f"rank of tensor {self.name!r}: at most {MAX_RANK} is supported, got {self.rank}")
        if self.parity == 0:
            object.__setattr__(self, "parity", (-1) ** self.rank)
        if self.parity not in (1, -1):
            raise OptinvError(f"parity of tensor {self.name!r}: expected +1 or -1, got {self.parity!r}")

    @property
    def size(self) -> int:
        return 2 * self.rank + 1

    @property
    def axial(self) -> bool:
        return self.parity != (-1) ** self.rank

    def to_dict(self) -> dict:
        return {"name": self.name, "rank": self.rank, "parity": self.parity}


@dataclass(frozen=True)
class Signature:
    """The input tensors, in row order, and the group (``"O3"`` or ``"SO3"``).

    A signature fixes the input layout: one row of ``dim`` coefficients per
    point, each tensor's ``2l+1`` free coefficients in turn (convention
    ``hippynn``).

    Parameters
    ----------
    tensors : tuple of TensorSpec
        Name, rank and parity of each tensor (names unique).
    group : str
        ``"O3"`` (rotations and reflections, default) or ``"SO3"`` (rotations
        only: pseudoscalars count); stored as a :class:`~optinv.algebra.group.Group`.
    convention : str
        Coefficient convention; only ``"hippynn"``.

    Examples
    --------
    >>> sig = Signature.from_l_max(2)
    >>> sig.describe(), sig.dim
    ('s:0,v:1,q:2 [O3, D=9]', 9)
    >>> Signature.parse("a:1,w:1:axial", "SO3").group.improper
    False
    """

    tensors: tuple[TensorSpec, ...]
    group: str = "O3"
    convention: str = "hippynn"
    aliases: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __post_init__(self):
        object.__setattr__(self, "tensors", tuple(self.tensors))
        object.__setattr__(self, "group", normalise_group(self.group))
        if not self.tensors:
            raise OptinvError("signature: expected at least one tensor")
        names = [t.name for t in self.tensors]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise OptinvError(f"signature: tensor names must be unique, repeated: {', '.join(dup)}")
        if self.convention != "hippynn":
            raise OptinvError(f"convention: only 'hippynn' is supported, got {self.convention!r}")

    # -- constructors ---------------------------------------------------------
    @classmethod
    def from_l_max(cls, l_max: int, group: str = "O3") -> "Signature":
        """One tensor of each rank 0..l_max, named s, v, q, t, l4, ... (HIP-HOP-NN)."""
        if not isinstance(l_max, int) or isinstance(l_max, bool) or l_max < 0:
            raise OptinvError(f"l_max: expected an integer >= 0, got {l_max!r}")
        if l_max > MAX_RANK:
            raise OptinvError(f"l_max: at most {MAX_RANK} is supported, got {l_max}")
        tensors = tuple(TensorSpec(default_name(l), l) for l in range(l_max + 1))
        aliases = tuple((WORD_NAMES[l], default_name(l)) for l in range(min(l_max + 1, len(WORD_NAMES))))
        return cls(tensors, group, aliases=aliases)

    @classmethod
    def parse(cls, text: str, group: str = "O3") -> "Signature":
        """Parse ``"a:1,b:1,q:2"``; a third field ``axial`` marks a pseudotensor (``"w:1:axial"``)."""
        if not isinstance(text, str) or not text.strip():
            raise OptinvError("tensors: expected a list like 'a:1,b:1,q:2'")
        specs = []
        for item in text.split(","):
            parts = [p.strip() for p in item.strip().split(":")]
            if len(parts) not in (2, 3) or not parts[0]:
                raise OptinvError(f"tensors: expected 'name:rank' or 'name:rank:axial', got {item.strip()!r}")
            try:
                rank = int(parts[1])
            except ValueError:
                raise OptinvError(f"tensors: rank of {parts[0]!r} must be an integer, got {parts[1]!r}") from None
            parity = 0
            if len(parts) == 3:
                if parts[2] not in ("axial", "polar"):
                    raise OptinvError(f"tensors: third field of {parts[0]!r} must be 'axial' or 'polar', got {parts[2]!r}")
                parity = -((-1) ** rank) if parts[2] == "axial" else (-1) ** rank
            specs.append(TensorSpec(parts[0], rank, parity))
        return cls(tuple(specs), group)

    @classmethod
    def channels(cls, ranks_per_channel: dict[int, int] | list[int], group: str = "O3") -> "Signature":
        """Several channels per rank: ``{0: 3, 1: 3, 2: 3}`` gives s0,s1,s2,v0,...,q2."""
        items = ranks_per_channel.items() if isinstance(ranks_per_channel, dict) else enumerate(ranks_per_channel)
        specs = []
        for l, count in sorted(items):
            for c in range(count):
                specs.append(TensorSpec(f"{default_name(l)}{c}", int(l)))
        return cls(tuple(specs), group)

    @classmethod
    def from_dict(cls, data: dict) -> "Signature":
        tensors = tuple(TensorSpec(t["name"], int(t["rank"]), int(t.get("parity", 0))) for t in data["tensors"])
        aliases = tuple(tuple(a) for a in data.get("aliases", ()))
        return cls(tensors, data.get("group", "O3"), data.get("convention", "hippynn"), aliases=aliases)

    def to_dict(self) -> dict:
        return {
            "tensors": [t.to_dict() for t in self.tensors],
            "group": self.group,
            "convention": self.convention,
            "aliases": [list(a) for a in self.aliases],
            "dim": self.dim,
        }

    # -- layout ---------------------------------------------------------------
    @property
    def dim(self) -> int:
        """D: the number of coefficients in one row."""
        return sum(t.size for t in self.tensors)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tensors]

    def offsets(self) -> list[int]:
        out, off = [], 0
        for t in self.tensors:
            out.append(off)
            off += t.size
        return out

    def slices(self) -> dict[str, slice]:
        return {t.name: slice(o, o + t.size) for t, o in zip(self.tensors, self.offsets())}

    def index(self, name: str) -> int:
        """Position of a tensor, accepting aliases (hippynn's zero/one/two/three)."""
        resolved = dict(self.aliases).get(name, name)
        for i, t in enumerate(self.tensors):
            if t.name == resolved:
                return i
        known = ", ".join(self.names)
        raise OptinvError(f"unknown tensor name {name!r}: the signature has {known}")

    def tensor(self, name: str) -> TensorSpec:
        return self.tensors[self.index(name)]

    @property
    def allows_epsilon(self) -> bool:
        """Whether a contraction with one Levi-Civita symbol can be invariant."""
        return not self.group.improper or any(t.axial for t in self.tensors)

    def describe(self) -> str:
        parts = [f"{t.name}:{t.rank}" + (":axial" if t.axial else "") for t in self.tensors]
        return f"{','.join(parts)} [{self.group}, D={self.dim}]"

    def __str__(self) -> str:
        return self.describe()
