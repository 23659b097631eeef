"""Why does a smaller invariant set fit methane worse?  Ranks on strata and conditioning on the data.

For each ACE setting and each of the three descriptor sets (linear basis, independent subset,
flexible subset) this measures, and writes to ``results/why_methane.{json,md}``:

1. **Ranks on strata** (exact mod p, :func:`.flexible_sets.stratum_ranks`): the catalogue
   (tensors vanishing, alignments, point-group neighbour-sum families: Td is the carbon of
   a tetrahedral CH4, C3v a hydrogen of it) and *user strata*: actual methane ``A`` rows
   (carbon and hydrogen centres, read exactly as binary fractions through
   :func:`optinv.algebra.strata.load_user_strata`), where the tangent is the whole
   coefficient space.
2. **Conditioning on the data** (float64): for carbon and hydrogen centres of test
   configurations, the singular values of the Jacobian of the *standardised* descriptors
   (what the MLP sees) with respect to the ``D`` coefficients ``A`` (rank ``D - 3``) and with
   respect to the 15 Cartesian coordinates of the molecule (rank 9 = 15 - 3 translations -
   3 rotations).  Condition number ``kappa = sigma_1 / sigma_r`` (``r`` the full rank),
   median and 95th percentile, and the numerical rank (``sigma_i > 1e-8 sigma_1``).
3. **Linear-model check**: ridge regression of the total energy on the summed per-element
   descriptors (a linear ACE model for the linear set), trained on 4000 configurations,
   test energy RMSE.  It says how much of the energy is already linear in each set.

``python -m examples.ace.why_methane`` (about 2 minutes on 2 busy cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from optinv.algebra.strata import catalogue, load_user_strata

from .backends import PolynomialBackend
from .data import load_dataset
from .descriptors import ACEDescriptor, Structures
from .flexible_sets import format_strata_table, stratum_ranks
from .sets import DescriptorSet

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CUTOFF, SPECIES = 3.5, [1, 6]
KINDS = ("linear", "independent", "flexible")


def load_sets(setting, sets_dir: Path) -> dict[str, DescriptorSet]:
    n, l, nu = setting
    return {k: DescriptorSet.from_dict(json.loads((sets_dir / f"{k}_{n}_{l}_{nu}.json").read_text())) for k in KINDS}


def methane_environments(data: dict, configs: np.ndarray, dset: DescriptorSet, dtype=torch.float64):
    """``A`` rows, their position Jacobians ``(atoms, D, 15)``, element numbers and config index per atom."""
    s = Structures.from_molecules(data["positions"][configs], data["numbers"], CUTOFF)
    base = ACEDescriptor(dset, CUTOFF, SPECIES, backend=torch.nn.Identity())  # same radial basis as the fits
    A, J = base.base_and_jacobian(s, dtype)
    n_at = 5
    G = torch.zeros(s.n_atoms, A.shape[1], n_at, 3, dtype=dtype)
    pi, pj = torch.as_tensor(s.pair_i), torch.as_tensor(s.pair_j)
    li, lj = pi % n_at, pj % n_at
    for p in range(len(pi)):  # r_ij = x_j - x_i: dA_i/dx_j = J_ij, dA_i/dx_i = -J_ij
        G[pi[p], :, lj[p]] += J[p]
        G[pi[p], :, li[p]] -= J[p]
    return A, G.reshape(s.n_atoms, A.shape[1], 3 * n_at), s.numbers, s.config_of_atom()


def descriptor_jacobian_A(dset: DescriptorSet, A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Descriptors ``(N, K)`` and their Jacobian ``(N, K, D)`` w.r.t. the rows (forward mode, one pass per column)."""
    backend = PolynomialBackend(dset)
    cols = []
    for j in range(A.shape[1]):
        t = torch.zeros_like(A)
        t[:, j] = 1.0
        V, dV = torch.func.jvp(backend, (A,), (t,))
        cols.append(dV)
    return V, torch.stack(cols, dim=-1)


def _kappa(J: torch.Tensor, rank: int) -> dict:
    sv = torch.linalg.svdvals(J)  # (N, min)
    kappa = (sv[:, 0] / sv[:, rank - 1]).numpy()
    num_rank = (sv > 1e-8 * sv[:, :1]).sum(1).numpy()
    return {"median": float(np.median(kappa)), "p95": float(np.percentile(kappa, 95)),
            "rank_min": int(num_rank.min()), "rank_max": int(num_rank.max()),
            "sigma_r_median": float(np.median(sv[:, rank - 1].numpy()))}


def conditioning(sets, A, G, numbers) -> dict:
    out = {}
    D = A.shape[1]
    for kind, ds in sets.items():
        V, JA = descriptor_jacobian_A(ds, A)
        res = {}
        for name, z in (("C", 6), ("H", 1)):
            m = torch.as_tensor(numbers == z)
            std = V[m].std(0).clamp_min(1e-12)
            JAs = JA[m] / std[None, :, None]  # standardised descriptors, as the MLP sees them
            JX = JAs @ G[m]
            res[name] = {"wrt_A": _kappa(JAs, D - 3), "wrt_positions": _kappa(JX, 9)}
        out[kind] = res
    return out


def near_strata(sets, A, numbers) -> dict:
    """Is bad conditioning concentrated near the strata ``v_n = 0``?  Per centre element: the median
    kappa (w.r.t. ``A``) in the fifth of rows with the smallest ``min_n |v_n| / |A|`` against the fifth
    with the largest, and the Spearman correlation of kappa with that distance."""
    sig = next(iter(sets.values())).signature
    vecs = [sl for name, sl in sig.slices().items() if name.startswith("v")]
    D = A.shape[1]
    out = {}
    for name, z in (("C", 6), ("H", 1)):
        m = torch.as_tensor(numbers == z)
        Az = A[m]
        dist = torch.stack([Az[:, sl].norm(dim=1) for sl in vecs]).min(0).values / Az.norm(dim=1)
        dist = dist.numpy()
        lo, hi = dist <= np.quantile(dist, 0.2), dist >= np.quantile(dist, 0.8)
        res = {}
        for kind, ds in sets.items():
            V, JA = descriptor_jacobian_A(ds, Az)
            sv = torch.linalg.svdvals(JA / V.std(0).clamp_min(1e-12)[None, :, None])
            kappa = (sv[:, 0] / sv[:, D - 4]).numpy()
            rank_d = np.argsort(np.argsort(dist))
            rank_k = np.argsort(np.argsort(kappa))
            rho = float(np.corrcoef(rank_d, rank_k)[0, 1])
            res[kind] = {"kappa_median_near": float(np.median(kappa[lo])), "kappa_median_far": float(np.median(kappa[hi])),
                         "spearman_kappa_vs_distance": rho}
        out[name] = res
    return out


def ridge_energy(sets, data, train, test, lam=1e-6) -> dict:
    """Test energy RMSE (meV/atom) of a ridge model linear in the per-element descriptor sums."""
    out = {}
    idx = np.concatenate([train, test])
    A, _, numbers, conf = methane_environments(data, idx, sets["linear"])
    E = data["energy"][idx]
    for kind, ds in sets.items():
        with torch.no_grad():
            V = PolynomialBackend(ds)(A).numpy()
        mu, sd = V.mean(0), V.std(0) + 1e-12
        Vs = (V - mu) / sd
        feats = []
        for z in (6, 1):
            S = np.zeros((len(idx), V.shape[1]))
            np.add.at(S, conf[numbers == z], Vs[numbers == z])
            feats.append(S)
        X = np.hstack(feats + [np.ones((len(idx), 1))])
        ntr = len(train)
        Xtr, ytr = X[:ntr], E[:ntr]
        w = np.linalg.solve(Xtr.T @ Xtr + lam * ntr * np.eye(X.shape[1]), Xtr.T @ ytr)
        rmse = float(np.sqrt(np.mean((X[ntr:] @ w - E[ntr:]) ** 2)) / 5 * 1e3)
        out[kind] = {"features": X.shape[1], "test_energy_rmse_meV_per_atom": rmse}
    return out


def user_strata_rows(A, numbers, k_each: int = 3):
    """A few carbon and hydrogen ``A`` rows as a ``.npy`` file of exact points (user strata)."""
    rows = np.concatenate([A[numbers == 6][:k_each].numpy(), A[numbers == 1][:k_each].numpy()])
    tmp = Path(tempfile.mkdtemp()) / "methane_rows.npy"
    np.save(tmp, rows.astype(np.float64))
    return tmp, ["C"] * k_each + ["H"] * k_each


def equilibrium_rows(dset: DescriptorSet):
    """``A`` rows of a tetrahedral CH4 (C-H 1.09 Å): the carbon (Td) and one hydrogen (C3v)."""
    d = 1.09 / np.sqrt(3)
    pos = np.array([[0, 0, 0], [d, d, d], [d, -d, -d], [-d, d, -d], [-d, -d, d]], dtype=np.float64)
    data = {"positions": pos[None], "numbers": np.array([6, 1, 1, 1, 1])}
    A, G, numbers, _ = methane_environments(data, np.array([0]), dset)
    return A[:2], G[:2]


def run(settings, out_dir: Path, n_configs: int = 300) -> dict:
    data = load_dataset("methane", 50_000, progress=False)
    n = len(data["energy"])
    test = np.arange(n - 2000, n)
    result = {"settings": {}}
    lines = ["# Why methane: ranks on strata and conditioning of the three descriptor sets", "",
             "Written by `python -m examples.ace.why_methane`. Ranks exact mod p; bold: below the maximum "
             "reached by all candidates with nu_max factors. Conditioning: float64 on "
             f"{n_configs} test configurations (carbon and hydrogen centres), standardised descriptors.", ""]
    for setting in settings:
        t0 = time.process_time()
        sets = load_sets(setting, out_dir / "sets")
        sig = sets["linear"].signature
        A, G, numbers, _ = methane_environments(data, test[:n_configs], sets["linear"])
        path, who = user_strata_rows(A, numbers)
        strata = catalogue(sig) + load_user_strata(path, sig)
        ranks = stratum_ranks(sets, strata)
        for r, w in zip(ranks[-len(who):], who):
            r["stratum"] = f"methane {w} row {r['stratum'].split('#')[-1]}"
        cond = conditioning(sets, A, G, numbers)
        near = near_strata(sets, A, numbers)
        Aeq, Geq = equilibrium_rows(sets["linear"])
        eq = {}
        for kind, ds in sets.items():
            V, JA = descriptor_jacobian_A(ds, Aeq)
            JX = JA @ Geq
            eq[kind] = {name: {"rank_wrt_positions": int(torch.linalg.matrix_rank(JX[i], rtol=1e-9)),
                               "rank_wrt_A": int(torch.linalg.matrix_rank(JA[i], rtol=1e-9))}
                        for i, name in enumerate(("C (Td)", "H (C3v)"))}
        pool = np.arange(n - 2000 - 500)
        ridge = ridge_energy(sets, data, pool[:4000], test[:1000])
        result["settings"][str(setting)] = {"K": {k: len(s) for k, s in sets.items()}, "strata": ranks,
                                            "conditioning": cond, "near_strata": near, "equilibrium_ranks": eq, "ridge": ridge,
                                            "cpu_s": time.process_time() - t0}
        lines += [f"## {setting}: K = " + ", ".join(f"{k} {len(s)}" for k, s in sets.items()), ""]
        lines += [format_strata_table(ranks, list(KINDS)), ""]
        lines += ["Conditioning (kappa = sigma_1 / sigma_r of the standardised descriptor Jacobian; median / 95th "
                  "percentile; numerical rank min-max):", "",
                  "| set | centre | w.r.t. A: kappa | rank | w.r.t. positions: kappa | rank |",
                  "|---|---|---:|---:|---:|---:|"]
        for kind in KINDS:
            for c in ("C", "H"):
                a, x = cond[kind][c]["wrt_A"], cond[kind][c]["wrt_positions"]
                lines.append(f"| {kind} | {c} | {a['median']:.3g} / {a['p95']:.3g} | {a['rank_min']}-{a['rank_max']} | "
                             f"{x['median']:.3g} / {x['p95']:.3g} | {x['rank_min']}-{x['rank_max']} |")
        lines += ["", "Near the strata v_n = 0? Median kappa w.r.t. A in the fifth of rows with the smallest "
                  "min_n |v_n| / |A| vs the fifth with the largest, and the Spearman correlation of kappa with that "
                  "distance: " + "; ".join(f"{k} {c}: {near[c][k]['kappa_median_near']:.3g} vs "
                                          f"{near[c][k]['kappa_median_far']:.3g} (rho {near[c][k]['spearman_kappa_vs_distance']:+.2f})"
                                          for k in KINDS for c in ("C", "H"))]
        lines += ["", "Float rank at the tetrahedral equilibrium (w.r.t. positions / w.r.t. A): " + "; ".join(
            f"{k}: " + ", ".join(f"{c} {v['rank_wrt_positions']}/{v['rank_wrt_A']}" for c, v in eq[k].items())
            for k in KINDS), "",
            "Ridge model linear in the summed standardised descriptors (4000 train, 1000 test configurations), "
            "test energy RMSE meV/atom: " + ", ".join(f"{k} {v['test_energy_rmse_meV_per_atom']:.1f}"
                                                         for k, v in ridge.items()), ""]
    (out_dir / "why_methane.json").write_text(json.dumps(result, indent=1) + "\n")
    (out_dir / "why_methane.md").write_text("\n".join(lines) + "\n")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m examples.ace.why_methane", description=__doc__.split("\n\n")[0])
    ap.add_argument("--settings", nargs="+", default=["3,2,3", "4,3,3"])
    ap.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory (reads its sets/*.json)")
    ap.add_argument("--configs", type=int, default=300)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    settings = [tuple(int(v) for v in s.split(",")) for s in args.settings]
    run(settings, args.out, args.configs)
    print((args.out / "why_methane.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
