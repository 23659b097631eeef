"""ACE mode: the functionally independent subset of the Atomic Cluster Expansion basis.

The ACE atomic base tensors are ``A_{n,l}``: ``n_rad`` radial channels of each
rank ``l = 0..l_max``, ``D = n_rad * (l_max+1)**2`` coefficients in all.  Its
*linear* basis of body order ``nu`` spans every invariant polynomial of degree
``nu`` in them, so its size is the Molien-Weyl dimension
(:func:`optinv.algebra.molien.invariant_dimensions`).  Functionally almost all
of it is redundant: at most ``D - d_orbit`` invariants can be independent
(``d_orbit = 3`` for generic inputs, hence the usual ``n_rad*(l_max+1)**2 - 3``).
:func:`ace_report` runs the engine's greedy selection on the ACE signature and
sets the two counts side by side, degree by degree.

>>> r = ace_report(n_rad=2, l_max=1, nu_max=3)
>>> [(d.nu, d.linear, d.selected) for d in r.per_degree]
[(1, 2, 2), (2, 6, 3), (3, 10, 0)]
>>> r.bound, r.formula_bound, r.complete
(5, 5, True)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from optinv.algebra.basis import Basis
from optinv.algebra.errors import OptinvError
from optinv.algebra.molien import ace_signature, invariant_dimensions
from optinv.algebra.select import select_basis
from optinv.algebra.signature import MAX_RANK, normalise_group

Progress = Callable[[str], None]


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        expected = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
        raise OptinvError(f"{name}: expected {expected}, got {value!r}")
    return value


@dataclass(frozen=True)
class DegreeCount:
    """Counts at one body order ``nu``: the linear ACE basis and the invariants selected."""

    nu: int
    linear: int  # dimension of the degree-nu invariant polynomials (Molien-Weyl, exact)
    selected: int  # functionally independent invariants of degree nu kept by the greedy search

    def to_dict(self) -> dict:
        return {"nu": self.nu, "linear": self.linear, "selected": self.selected}


@dataclass(frozen=True)
class AceReport:
    """Linear versus functionally independent ACE descriptors, per degree, with the bound."""

    n_rad: int
    l_max: int
    nu_max: int
    group: str
    per_degree: tuple[DegreeCount, ...]
    basis: Basis

    @property
    def bound(self) -> int:
        """The engine's bound ``D - d_orbit`` (generic orbit dimension computed exactly)."""
        return self.basis.bound.bound

    @property
    def orbit_dim(self) -> int:
        return self.basis.bound.orbit_dim

    @property
    def dim(self) -> int:
        return self.basis.signature.dim

    @property
    def formula_bound(self) -> int:
        """The textbook bound ``n_rad * (l_max+1)**2 - 3``."""
        return self.n_rad * (self.l_max + 1) ** 2 - 3

    @property
    def linear_total(self) -> int:
        return sum(d.linear for d in self.per_degree)

    @property
    def selected_total(self) -> int:
        return sum(d.selected for d in self.per_degree)

    @property
    def complete(self) -> bool:
        return self.basis.complete

    def bound_note(self) -> str:
        """Why the engine's bound is what it is (and why it may differ from the formula)."""
        if self.orbit_dim == 3:
            return f"D - 3 = {self.dim} - 3: generic rotation orbits are 3-dimensional"
        if self.l_max == 0:
            return (f"only scalars: rotations do not move them (orbit dimension 0), so all D = {self.dim} "
                    f"are independent invariants; the formula n_rad*(l_max+1)^2 - 3 = {self.formula_bound} "
                    "does not apply")
        return (f"generic orbit dimension {self.orbit_dim}, not 3 (a single vector is fixed by the rotations "
                f"about itself), so the bound is D - {self.orbit_dim} = {self.bound}, not the formula's "
                f"{self.formula_bound}")

    # -- reporting ------------------------------------------------------------------
    def counts_table(self) -> str:
        rows = [("nu", "linear", "selected", "linear <= nu", "selected <= nu")]
        lin = sel = 0
        for d in self.per_degree:
            lin += d.linear
            sel += d.selected
            rows.append((str(d.nu), str(d.linear), str(d.selected), str(lin), str(sel)))
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def summary(self) -> str:
        status = "complete" if self.complete else ("maximal for nu_max" if self.basis.exhausted else "incomplete")
        ratio = self.linear_total / self.selected_total if self.selected_total else float("inf")
        return (
            f"ACE n_rad={self.n_rad} l_max={self.l_max} nu_max={self.nu_max} [{self.group}, D={self.dim}]: "
            f"{self.linear_total} linear basis functions, {self.selected_total} functionally independent "
            f"({ratio:.1f}x fewer); bound {self.bound} ({status})"
        )

    def report(self) -> str:
        return (
            f"{self.counts_table()}\n\n{self.summary()}\n"
            f"bound: {self.bound_note()}\n"
            f"linear: dimension of the invariant polynomials of each degree (Molien-Weyl integral, exact)\n"
            f"selected: {self.basis.proof()}\n\n"
            f"{self.basis.table()}"
        )

    def __str__(self) -> str:
        return self.report()

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "n_rad": self.n_rad,
            "l_max": self.l_max,
            "nu_max": self.nu_max,
            "group": self.group,
            "dim": self.dim,
            "per_degree": [d.to_dict() for d in self.per_degree],
            "bound": self.bound,
            "formula_bound": self.formula_bound,
            "orbit_dim": self.orbit_dim,
            "bound_note": self.bound_note(),
            "linear_total": self.linear_total,
            "selected_total": self.selected_total,
            "complete": self.complete,
            "selected": [{"einsum": inv.einsum, "degree": inv.degree} for inv in self.basis.invariants],
            "basis": self.basis.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


def ace_report(n_rad: int, l_max: int, nu_max: int, group: str = "O3", seed: int = 0,
               progress: Progress | None = None) -> AceReport:
    """Select the functionally independent ACE invariants and count both bases per degree.

    >>> r = ace_report(1, 1, 4)          # s and v: s and |v|^2 are all there is
    >>> [d.selected for d in r.per_degree], r.bound, r.formula_bound
    ([1, 1, 0, 0], 2, 1)
    """
    _check_int("n_rad", n_rad, 1)
    _check_int("l_max", l_max, 0, MAX_RANK)
    _check_int("nu_max", nu_max, 1)
    group = normalise_group(group)
    sig = ace_signature(n_rad, l_max, group)
    linear = invariant_dimensions(sig, nu_max)
    request = {"ace": {"n_rad": n_rad, "l_max": l_max, "nu_max": nu_max}, "group": group}
    basis = select_basis(sig, nu_max, seed=seed, progress=progress, request=request)
    per = tuple(
        DegreeCount(nu, linear[nu], sum(1 for inv in basis.invariants if inv.degree == nu))
        for nu in range(1, nu_max + 1)
    )
    return AceReport(n_rad, l_max, nu_max, group, per, basis)


@dataclass(frozen=True)
class AceTable:
    """Selected versus linear counts over a grid of ``(n_rad, l_max)`` and ``nu_max``."""

    group: str
    n_rads: tuple[int, ...]
    l_maxes: tuple[int, ...]
    nu_maxes: tuple[int, ...]
    cells: dict  # (n_rad, l_max, nu_max) -> AceReport

    def markdown(self) -> str:
        head = ["n_rad", "l_max", "D", "bound"] + [f"nu_max={nu}" for nu in self.nu_maxes]
        lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
        for n in self.n_rads:
            for l in self.l_maxes:
                first = self.cells[n, l, self.nu_maxes[0]]
                row = [str(n), str(l), str(first.dim), str(first.bound)]
                for nu in self.nu_maxes:
                    r = self.cells[n, l, nu]
                    sel = f"**{r.selected_total}**" if r.complete else str(r.selected_total)
                    row.append(f"{sel} / {r.linear_total}")
                lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines)

    def legend(self) -> str:
        return (
            f"Group {self.group}. Each cell: functionally independent invariants selected / size of the linear "
            "ACE basis, both counting all degrees 1..nu_max (the constant excluded). Bold: the selection "
            "reaches the bound D - d_orbit (locally complete). The bound is n_rad*(l_max+1)^2 - 3 except for "
            "l_max = 0 (scalars only, no orbit: bound n_rad) and n_rad = 1, l_max = 1 (one vector: orbit "
            "dimension 2, bound 2)."
        )

    def to_dict(self) -> list[dict]:
        return [
            {"n_rad": n, "l_max": l, "nu_max": nu, "group": self.group, "dim": r.dim, "bound": r.bound,
             "linear": r.linear_total, "selected": r.selected_total, "complete": r.complete,
             "per_degree": [d.to_dict() for d in r.per_degree]}
            for (n, l, nu), r in self.cells.items()
        ]


def ace_table(n_rads=range(1, 7), l_maxes=range(0, 5), nu_maxes=(2, 3, 4), group: str = "O3", seed: int = 0,
              progress: Progress | None = None) -> AceTable:
    """Run :func:`ace_report` on a grid (one selection per cell, each with its own ``nu_max``).

    >>> print(ace_table([1], [1], [2, 3]).markdown())
    | n_rad | l_max | D | bound | nu_max=2 | nu_max=3 |
    |---:|---:|---:|---:|---:|---:|
    | 1 | 1 | 4 | 2 | **2** / 3 | **2** / 5 |
    """
    group = normalise_group(group)
    n_rads, l_maxes, nu_maxes = tuple(n_rads), tuple(l_maxes), tuple(nu_maxes)
    for name, values in (("n_rad", n_rads), ("l_max", l_maxes), ("nu_max", nu_maxes)):
        if not values:
            raise OptinvError(f"{name}: expected at least one value")
    cells = {}
    for n in n_rads:
        for l in l_maxes:
            for nu in nu_maxes:
                cells[n, l, nu] = ace_report(n, l, nu, group, seed)
            if progress:
                r = cells[n, l, nu_maxes[-1]]
                progress(f"n_rad={n} l_max={l}: selected {r.selected_total} / linear {r.linear_total}, "
                         f"bound {r.bound}")
    return AceTable(group, n_rads, l_maxes, nu_maxes, cells)


__all__ = ["AceReport", "AceTable", "DegreeCount", "ace_report", "ace_table"]
