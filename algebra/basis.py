"""The Basis: selected invariants, why each was kept, and what was proven about the set.

A :class:`Basis` is the engine's output and the code generator's input.  It
prints as a table (einsum, degree, cost, certificate) with a summary, and
round-trips through JSON.

>>> from optinv.algebra.select import select_basis
>>> from optinv.algebra.signature import Signature
>>> b = select_basis(Signature.from_l_max(1), n_max=2)
>>> [inv.einsum for inv in b.invariants], b.rank, b.bound.bound
(['->,s', 'i,i->,v,v'], 2, 2)
>>> Basis.from_json(b.to_json()) == b
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from optinv.algebra.graphs import ContractionGraph
from optinv.algebra.rank import Bound
from optinv.algebra.signature import Signature


@dataclass(frozen=True)
class SelectedInvariant:
    """One kept invariant and its certificate (the exact rank it raised the set to)."""

    graph: ContractionGraph
    rank_after: int
    certificate: str  # "exact mod p" or "float" (given lists checked numerically only)

    @property
    def einsum(self) -> str:
        return self.graph.einsum

    @property
    def degree(self) -> int:
        return self.graph.degree

    @property
    def cost(self) -> int:
        return self.graph.cost

    def to_dict(self, signature: Signature) -> dict:
        return {
            "einsum": self.einsum,
            "degree": self.degree,
            "cost": self.cost,
            "pseudoscalar": self.graph.parity(signature) == -1,
            "rank_after": self.rank_after,
            "certificate": self.certificate,
        }


@dataclass(frozen=True)
class StratumRank:
    """A set's rank on one stratum beside the stratum's bound and the best any set with n_max factors does."""

    name: str
    kind: str
    description: str
    dim: int
    orbit_dim: int
    rank: int
    max_rank: int  # rank of every candidate with at most n_max factors on this stratum

    @property
    def bound(self) -> int:
        return self.dim - self.orbit_dim

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "description": self.description, "dim": self.dim,
                "orbit_dim": self.orbit_dim, "bound": self.bound, "rank": self.rank, "max_rank": self.max_rank}

    @classmethod
    def from_dict(cls, d: dict) -> "StratumRank":
        return cls(str(d["name"]), str(d["kind"]), str(d["description"]), int(d["dim"]), int(d["orbit_dim"]),
                   int(d["rank"]), int(d["max_rank"]))


def strata_table(strata, n_max: int | None = None) -> str:
    """Text table: stratum, dim, orbit dim, bound, this set's rank, maximum with n_max factors."""
    most = f"max (n<={n_max})" if n_max else "max"
    rows = [("stratum", "kind", "dim", "orbit", "bound", "rank", most, "")]
    for s in strata:
        flag = "" if s.rank == s.max_rank else f"loses {s.max_rank - s.rank}"
        rows.append((s.name, s.kind, str(s.dim), str(s.orbit_dim), str(s.bound), str(s.rank), str(s.max_rank), flag))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths).rstrip())
    short = sum(s.max_rank - s.rank for s in strata)
    lines.append(f"\n{sum(s.rank == s.max_rank for s in strata)} of {len(strata)} strata at the maximum achievable"
                 + (f"; {short} rank lost in all" if short else ""))
    return "\n".join(lines)


@dataclass(frozen=True)
class Basis:
    """An ordered, functionally independent set of invariants for a signature."""

    signature: Signature
    n_max: int
    invariants: tuple[SelectedInvariant, ...]
    bound: Bound
    rank: int
    examined: int
    rejected: tuple[str, ...]
    exhausted: bool  # every candidate with <= n_max factors was checked
    float_rank: int
    prime: int
    seed: int
    request: dict = field(default_factory=dict, compare=False)
    strata: tuple[StratumRank, ...] = ()  # ranks on degenerate strata, when they were asked for
    selection: str = "greedy: cheapest first, kept when the generic rank rises"

    @property
    def flexible(self) -> bool:
        """Every stratum reported is at the maximum achievable with n_max factors."""
        return bool(self.strata) and all(s.rank == s.max_rank for s in self.strata)

    @property
    def complete(self) -> bool:
        """The certified rank reaches the bound: locally complete."""
        return self.rank == self.bound.bound

    @property
    def graphs(self) -> list[ContractionGraph]:
        return [inv.graph for inv in self.invariants]

    @property
    def einsums(self) -> list[str]:
        return [inv.einsum for inv in self.invariants]

    def __len__(self) -> int:
        return len(self.invariants)

    # -- reporting --------------------------------------------------------------
    def proof(self) -> str:
        """What the rank claim rests on, in one sentence."""
        if self.complete:
            return (
                f"complete: exact rank {self.rank} mod {self.prime} equals the bound {self.bound.bound} "
                f"({self.bound.describe()})"
            )
        if self.exhausted:
            return (
                f"maximal for n_max={self.n_max}: all {self.examined} candidates with at most {self.n_max} factors "
                f"were checked; the {len(self.rejected)} rejected ones add no rank at a random point mod {self.prime} "
                f"(bound {self.bound.bound} needs more factors)"
            )
        return f"incomplete: rank {self.rank} of bound {self.bound.bound}; the search stopped early"

    def table(self) -> str:
        rows = [("#", "einsum", "degree", "cost", "certificate")]
        for k, inv in enumerate(self.invariants):
            rows.append((str(k), inv.einsum, str(inv.degree), str(inv.cost), f"rank {inv.rank_after} ({inv.certificate})"))
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def summary(self) -> str:
        status = "complete" if self.complete else ("maximal for n_max" if self.exhausted else "incomplete")
        return (
            f"{self.signature.describe()} n_max={self.n_max}: {len(self)} invariants, rank {self.rank} / bound "
            f"{self.bound.bound} ({status}); float rank {self.float_rank}; examined {self.examined}, "
            f"rejected {len(self.rejected)}"
        )

    def report(self) -> str:
        text = f"{self.table()}\n\n{self.summary()}\n{self.proof()}"
        if self.strata:
            text += f"\nselection: {self.selection}\n\nranks on strata (exact mod {self.prime}):\n"
            text += strata_table(self.strata, self.n_max)
        if self.float_rank != self.rank:
            text += (f"\nwarning: the float64 SVD rank ({self.float_rank}) differs from the exact rank ({self.rank}); "
                     "the exact rank is the certificate, the float one is ill-conditioned here")
        return text

    def __str__(self) -> str:
        return self.report()

    # -- serialisation ------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "signature": self.signature.to_dict(),
            "n_max": self.n_max,
            "invariants": [inv.to_dict(self.signature) for inv in self.invariants],
            "rank": self.rank,
            "bound": self.bound.bound,
            "bound_detail": self.bound.to_dict(),
            "complete": self.complete,
            "exhausted": self.exhausted,
            "float_rank": self.float_rank,
            "examined": self.examined,
            "rejected": list(self.rejected),
            "prime": self.prime,
            "seed": self.seed,
            "proof": self.proof(),
            "request": self.request,
            "selection": self.selection,
            "strata": [s.to_dict() for s in self.strata],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> "Basis":
        sig = Signature.from_dict(data["signature"])
        invs = tuple(
            SelectedInvariant(ContractionGraph.from_einsum(d["einsum"], sig), int(d["rank_after"]), d["certificate"])
            for d in data["invariants"]
        )
        bd = data["bound_detail"]
        bound = Bound(int(bd["dim"]), int(bd["orbit_dim"]), int(bd["prime"]), int(bd["seed"]))
        return cls(
            signature=sig,
            n_max=int(data["n_max"]),
            invariants=invs,
            bound=bound,
            rank=int(data["rank"]),
            examined=int(data["examined"]),
            rejected=tuple(data["rejected"]),
            exhausted=bool(data["exhausted"]),
            float_rank=int(data["float_rank"]),
            prime=int(data["prime"]),
            seed=int(data["seed"]),
            request=dict(data.get("request", {})),
            strata=tuple(StratumRank.from_dict(d) for d in data.get("strata", ())),
            selection=str(data.get("selection", cls.selection)),
        )

    @classmethod
    def from_json(cls, text: str) -> "Basis":
        return cls.from_dict(json.loads(text))
