"""The third ACE descriptor set: the flexible subset, complete at generic points AND on degenerate strata.

Same signature and pipeline as :func:`.sets.independent_set` (``n_rad`` channels of ranks
``0..l_max``, at most ``nu_max`` factors, connected graphs evaluated by the generated
kernels), but chosen by :func:`optinv.algebra.flexible.select_flexible_basis`: besides the
generic rank ``D - 3`` it reaches, on every stratum of the catalogue (tensors vanishing,
vector along an eigenvector of a ``q``, uniaxial ``q``, point-group neighbour-sum families
such as Td for a tetrahedral carbon or C3v for a methane hydrogen), the largest rank that any
candidate with ``nu_max`` factors reaches there.

Search budget: the flexible search ends with an exhaustive branch and bound under a node
budget (deterministic).  The default ``max_nodes=0`` keeps only the greedy part (greedy
cover, drop redundant members, single cheaper exchanges); the size is then "best found",
not "proven minimal" (the set's ``info["selection"]`` says which).

:func:`stratum_ranks` gives any set's rank on each stratum beside the maximum; it handles
products of connected graphs (the linear basis) with the product rule, exactly mod p.

``python -m examples.ace.flexible_sets 3 2 3`` prints the three counts and the per-stratum table.
"""

from __future__ import annotations

import time

import numpy as np

from optinv.algebra.candidates import candidates
from optinv.algebra.evaluate import exact_values_and_gradients
from optinv.algebra.modular import matmul_mod
from optinv.algebra.flexible import select_flexible_basis
from optinv.algebra.modular import modular_rank
from optinv.algebra.strata import StrataRows, Stratum, catalogue

from .sets import DescriptorSet, ace_signature, independent_set, linear_ace_set

DEFAULT_KINDS = ("vanishing", "alignment", "point-group")


def flexible_set(n_rad: int, l_max: int, nu_max: int, seed: int = 0, kinds=DEFAULT_KINDS,
                 max_nodes: int = 0, search: str = "engine") -> DescriptorSet:
    """The flexible subset for one ACE setting (see the module docstring for ``max_nodes``).

    ``search="engine"``: :func:`optinv.algebra.flexible.select_flexible_basis` (greedy cover,
    redundant members dropped, then single cheaper exchanges).  ``search="greedy"``: only the
    first two steps (the engine's own greedy cover and drop), for settings where the
    exchange step is too slow (at (4,3,3), 198 candidates and 68 strata, it did not finish in
    minutes of CPU time); every stratum still reaches its maximum, only the total cost may
    not be locally minimal.  Either way ``info`` records the search, its time and the
    per-stratum ranks.
    """
    if search not in ("engine", "greedy"):
        raise ValueError(f"search: expected 'engine' or 'greedy', got {search!r}")
    sig = ace_signature(n_rad, l_max)
    strata = catalogue(sig, kinds=tuple(kinds))
    t0, c0 = time.perf_counter(), time.process_time()
    if search == "engine":
        basis = select_flexible_basis(sig, nu_max, strata=strata, seed=seed, max_nodes=max_nodes)
        graphs = [inv.graph for inv in basis.invariants]
        selection, strata_info = basis.selection, [s.to_dict() for s in basis.strata]
        at_max = all(s.rank == s.max_rank for s in basis.strata)
        rank, bound, complete = basis.rank, basis.bound.bound, basis.complete
    else:
        graphs = select_flexible_basis(sig, nu_max, strata=strata, seed=seed, max_nodes=0, exchanges=False).graphs
        ds = DescriptorSet("flexible", n_rad, l_max, nu_max, sig, graphs, [(k,) for k in range(len(graphs))])
        rows = stratum_ranks({"flexible": ds}, strata, seed)
        strata_info = rows
        at_max = all(r["flexible"] == r["max"] for r in rows)
        rank, bound = rows[0]["flexible"], rows[0]["bound"]
        complete = rank == bound
        selection = (f"flexible: {len(graphs)} invariants, greedy cover with redundant members dropped "
                     "(no exchange step, no exhaustive search: size and cost not proven minimal)")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    info = {
        "rank": rank, "bound": bound, "complete": complete,
        "strata_kinds": list(kinds), "n_strata": len(strata), "search": search, "max_nodes": max_nodes,
        "selection": selection, "select_wall_s": round(wall, 2), "select_cpu_s": round(cpu, 2),
        "every_stratum_at_max": at_max, "strata": strata_info,
    }
    return DescriptorSet("flexible", n_rad, l_max, nu_max, sig, graphs, [(k,) for k in range(len(graphs))], info)


def _product_rows(dset: DescriptorSet, sr: StrataRows) -> list[np.ndarray]:
    """Each descriptor's gradient restricted to each stratum, exactly mod p (product rule for products)."""
    p = sr.p
    vals, grads = [], []
    for g in dset.connected:
        v, dv = exact_values_and_gradients(g, sr.tensors, dset.signature, p)
        vals.append(np.asarray(v, dtype=np.int64) % p)
        grads.append(np.asarray(dv, dtype=np.int64) % p)
    n_s, dim = len(sr.strata), dset.signature.dim
    rows = np.zeros((n_s, len(dset.products), dim), dtype=np.int64)
    for k, prod in enumerate(dset.products):
        for i, fi in enumerate(prod):
            coef = np.ones(n_s, dtype=np.int64)
            for j, fj in enumerate(prod):
                if j != i:
                    coef = coef * vals[fj] % p
            rows[:, k, :] = (rows[:, k, :] + coef[:, None] * grads[fi]) % p
    return [matmul_mod(rows[s], R.T.copy(), p) for s, R in enumerate(sr.restrictions)]


def stratum_ranks(sets: dict[str, DescriptorSet], strata: list[Stratum], seed: int = 0) -> list[dict]:
    """Per stratum: dimension, bound, each set's rank, and the maximum any candidate with ``nu_max`` factors reaches.

    All sets must share one signature and ``nu_max``.  Ranks are exact mod p at one random
    exact point per stratum (the same point for every set).
    """
    first = next(iter(sets.values()))
    if any(s.signature.to_dict() != first.signature.to_dict() or s.nu_max != first.nu_max for s in sets.values()):
        raise ValueError("stratum_ranks: every set must have the same signature and nu_max")
    sr = StrataRows(first.signature, strata, seed)
    pool = sr.rows(list(candidates(first.signature, first.nu_max)))
    own = {name: _product_rows(ds, sr) for name, ds in sets.items()}
    out = []
    for s, (stratum, geo) in enumerate(zip(sr.strata, sr.geometries)):
        row = {"stratum": stratum.name, "kind": stratum.kind, "dim": geo.dim, "bound": geo.bound,
               "max": modular_rank(pool[s], sr.p)}
        for name in sets:
            row[name] = modular_rank(own[name][s], sr.p)
        out.append(row)
    return out


def three_sets(n_rad: int, l_max: int, nu_max: int, **flex) -> dict[str, DescriptorSet]:
    return {"linear": linear_ace_set(n_rad, l_max, nu_max), "independent": independent_set(n_rad, l_max, nu_max),
            "flexible": flexible_set(n_rad, l_max, nu_max, **flex)}


def format_strata_table(rows: list[dict], names) -> str:
    head = "| stratum | dim | bound | max (nu_max factors) | " + " | ".join(names) + " |"
    lines = [head, "|---|---:|---:|---:|" + "---:|" * len(names)]
    for r in rows:
        cells = [f"**{r[n]}**" if r[n] < r["max"] else str(r[n]) for n in names]
        lines.append(f"| {r['stratum']} | {r['dim']} | {r['bound']} | {r['max']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["DEFAULT_KINDS", "flexible_set", "format_strata_table", "stratum_ranks", "three_sets"]


if __name__ == "__main__":  # pragma: no cover - quick look
    import sys

    args = [int(a) for a in sys.argv[1:4]] or [3, 2, 3]
    sets = three_sets(*args)
    for name, s in sets.items():
        print(f"{s.label}: {len(s)} descriptors, {len(s.connected)} connected graphs, by degree {s.count_by_degree()}")
    print(sets["flexible"].info["selection"])
    rows = stratum_ranks(sets, catalogue(sets["linear"].signature))
    print(format_strata_table(rows, list(sets)))
    print("(bold: below the maximum)")
