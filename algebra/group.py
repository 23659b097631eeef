"""The symmetry group of the inputs: O(3) (rotations and reflections) or SO(3) (rotations only).

A :class:`Group` is a ``str`` (``"O3"`` or ``"SO3"``), so metadata, JSON and
comparisons with the strings keep working, and it carries what the engine
needs to know about the group: the space's dimension, the generators of its
rotations (whose span at a point is the tangent space of the orbit), and
whether it contains reflections (then pseudoscalars are not invariant).
Adding a group is a new :class:`Group` entry in :data:`GROUPS`.

>>> O3.improper, SO3.improper, O3.dim, O3.orbit_dim
(True, False, 3, 3)
>>> Group.of("so(3)") == "SO3"
True
>>> O3.keeps(-1), SO3.keeps(-1)
(False, True)
"""

from __future__ import annotations

import itertools

import numpy as np

from optinv.algebra.errors import OptinvError


def levi_civita(dim: int = 3) -> np.ndarray:
    """The totally antisymmetric symbol ``eps[i, j, k, ...]`` in ``dim`` dimensions (int64)."""
    eps = np.zeros((dim,) * dim, dtype=np.int64)
    for perm in itertools.permutations(range(dim)):
        eps[perm] = int(round(np.linalg.det(np.eye(dim)[list(perm)])))
    return eps


class Group(str):
    """``"O3"`` or ``"SO3"``, with the group's properties (see the module docstring)."""

    dim: int
    improper: bool

    def __new__(cls, name: str, dim: int = 3, improper: bool = True):
        self = super().__new__(cls, name)
        self.dim = dim
        self.improper = improper
        return self

    @classmethod
    def of(cls, group) -> "Group":
        """The group named ``group`` (``"O3"``, ``"so3"``, ``"SO(3)"``, or a Group)."""
        name = str(group).upper().replace("(", "").replace(")", "")
        if name not in GROUPS:
            raise OptinvError(f"group: expected 'O3' or 'SO3', got {group!r}")
        return GROUPS[name]

    @property
    def generators(self) -> np.ndarray:
        """``(orbit_dim, dim, dim)``: the generators of rotations, ``(L_a)_{ij} = -eps_{aij}``."""
        return -levi_civita(self.dim)

    @property
    def orbit_dim(self) -> int:
        """Dimension of the rotation group (the generic orbit dimension of enough tensors)."""
        return self.dim * (self.dim - 1) // 2

    def keeps(self, parity: int) -> bool:
        """Whether an invariant of this parity under reflections (+1 or -1) is invariant under the group."""
        return parity == 1 or not self.improper

    def __reduce__(self):  # pickles (and copies) as the registered instance
        return (Group.of, (str(self),))


O3 = Group("O3", improper=True)
SO3 = Group("SO3", improper=False)
GROUPS = {"O3": O3, "SO3": SO3}
