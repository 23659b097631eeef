"""Degenerate and near-symmetric methane environments against trained HIP-NN / HIP-HOP-NN models.

**(a) Pairs a 3-body descriptor cannot tell apart.**  A 3-body descriptor of
the carbon's environment (any function of the degree-2 invariants of its
neighbour densities: the power spectrum, SOAP, HIP-NN-TS's ``|sum_j f(r_j)
Y_l(r_j)|^2``) sees exactly the multiset of triplets ``(r_i, r_j, cos
theta_ij)`` over pairs of neighbours, because every degree-2 invariant is
``sum_{i,j} f_a(r_i) f_b(r_j) P_l(cos theta_ij)``.  Construction:

* A: four H at radii ``(a, a, b, b)`` around C, in random directions near a
  tetrahedron.  Its Gram matrix ``G_ij = r_i . r_j`` determines it up to O(3).
* B's Gram matrix is A's with the two entries ``G_02`` and ``G_03`` exchanged
  (and their transposes).  Both pairs have radii ``(a, b)``, so B has the same
  triplet multiset as A.  It is a Gram matrix of four vectors in 3D only if it
  is positive semidefinite of rank 3: A is moved (least change, SLSQP, then
  Newton steps on the single equation) until the smallest eigenvalue of B's
  matrix is zero; B's vectors are then its top three eigenvectors scaled by
  the square roots of their eigenvalues, turned by a random rotation.
* Checks: the triplet multisets agree (sorted, ~1e-12); B's vectors reproduce
  B's Gram matrix; B is not congruent to A (no relabelling of the H atoms maps
  one Gram matrix onto the other, which is what "related by a rotation or
  reflection" means for the C environment); and, with optinv's generated
  modules as the independent engine, the degree-2 invariants
  (``hop_l4_n2``) of the environment's neighbour sums are equal for random
  radial functions while the degree-4 ones (``hop_l3_n4``) differ.

What "cannot tell apart" means for a whole molecule: a hippynn network with one
interaction layer writes the energy as a sum of atom energies, each a function
of that atom's own environment.  The C atom's energy of HIP-NN (2-body) and of
HIP-NN-TS (3-body) is therefore *identical* for A and B; only higher body
order (HIP-HOP-NN, ``n_max >= 3``) can make it differ.  The H atoms'
environments of A and B are not alike (they cannot be: equal 3-body
environments of every atom here would force equal Gram matrices up to
relabelling, i.e. congruent molecules), so every model can tell the molecules
apart through the H atoms.  Reported: ``E_A - E_B`` of each model and of
GFN2-xTB, and the C atom's share ``E_C(A) - E_C(B)``.

**(b) Near-symmetric environments.**  The GFN2-xTB tetrahedral CH4 distorted
along symmetry-breaking displacements of small amplitude: an E-type bend
(D2d: the H directions stretched along z at fixed bond length), a T2-type bend
(C3v umbrella: three H tilted by the same angle away from the fourth, fixed
bond length), and one C-H bond stretched (C3v).  Reported: the energy curve
``E(eps) - E(0)`` of GFN2-xTB and of each model, the ratio of the fitted
curvatures at ``eps = 0``, and each model's T2-bend energy at tilts of
0.001-1 degree with the exponent ``p`` of ``E ~ eps^p`` (2 for a smooth minimum,
1 for a cusp; HIP-NN-TS's ``sqrt(|v|^2 + 1e-6)`` features give the latter).

    python -m examples.hiphop.degenerate                    # every study run at the largest size found
    python -m examples.hiphop.degenerate --sizes 4000 1000  # these sizes
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
STUDY_RUNS = HERE / "runs" / "curves"
SWAP = ((0, 2), (0, 3))  # the two Gram entries B exchanges; H0, H1 at radius a, H2, H3 at b


# -- (a) the construction ---------------------------------------------------------------------------


def gram(vectors: np.ndarray) -> np.ndarray:
    return vectors @ vectors.T


def swapped(G: np.ndarray, swap=SWAP) -> np.ndarray:
    """``G`` with the entries ``swap[0]`` and ``swap[1]`` (and their transposes) exchanged."""
    (i, j), (k, l) = swap
    B = G.copy()
    B[i, j], B[k, l] = G[k, l], G[i, j]
    B[j, i], B[l, k] = B[i, j], B[k, l]
    return B


def triplets(vectors: np.ndarray) -> np.ndarray:
    """What a 3-body descriptor of the centre sees: the sorted multiset of ``(r_i, r_j, cos theta_ij)``
    over unordered pairs ``i < j`` (radii in increasing order within a pair), and the radii (``i = j``)."""
    r = np.linalg.norm(vectors, axis=1)
    rows = [(r[i], r[i], 1.0) for i in range(len(r))]
    for i, j in itertools.combinations(range(len(r)), 2):
        lo, hi = sorted((r[i], r[j]))
        rows.append((lo, hi, vectors[i] @ vectors[j] / (r[i] * r[j])))
    rows = np.array(rows)
    # sort on rounded values: radii equal to 1e-15 must not reorder rows
    return rows[np.lexsort(np.round(rows, 8).T[::-1])]


def congruence_distance(vectors_a: np.ndarray, vectors_b: np.ndarray) -> float:
    """``min`` over relabellings ``P`` of ``max |G_B - P G_A P^T|``: zero iff B is A rotated or reflected."""
    Ga, Gb = gram(vectors_a), gram(vectors_b)
    return min(float(np.abs(Gb - Ga[np.ix_(p, p)]).max()) for p in itertools.permutations(range(len(Ga))))


def _vectors(x: np.ndarray, radii: np.ndarray) -> np.ndarray:
    u = x.reshape(4, 3)
    return radii[:, None] * u / np.linalg.norm(u, axis=1, keepdims=True)


def _lambda_min(x, radii):
    return np.linalg.eigvalsh(swapped(gram(_vectors(x, radii))))[0]


def random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


TETRAHEDRON = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3.0)


def degenerate_pair(seed: int, a: float = 1.05, b: float = 1.15, distortion: float = 0.35, margin: float = 0.1,
                    tol: float = 1e-13, attempts: int = 20):
    """H vectors of A and B (C at the origin): equal 3-body descriptors of C, not congruent.

    ``distortion``: scale of the random change of A's H directions from a tetrahedron; ``margin``
    (Angstrom^2): least ``|G_02 - G_03|`` and ``|G_12 - G_13|`` of A.  Without it the nearest solutions
    are trivial: ``G_02 = G_03`` makes B equal to A, ``G_12 = G_13`` makes the exchange a relabelling of
    H2 and H3 (B congruent to A).  A start whose solution is still congruent is redrawn.
    """
    from scipy.optimize import minimize

    rng = np.random.default_rng([seed, 2024])
    radii = np.array([a, a, b, b])

    def apart(x):
        G = gram(_vectors(x, radii))
        return np.array([(G[0, 2] - G[0, 3]) ** 2, (G[1, 2] - G[1, 3]) ** 2]) - margin**2

    for _ in range(attempts):
        x0 = (TETRAHEDRON + distortion * rng.normal(size=(4, 3)) / np.sqrt(3)).ravel()
        rotation = random_rotation(rng)
        # least change of A that makes B's Gram matrix singular (then PSD of rank 3)
        res = minimize(lambda x: np.sum((x - x0) ** 2), x0, method="SLSQP",
                       constraints=[{"type": "eq", "fun": lambda x: _lambda_min(x, radii)},
                                    {"type": "ineq", "fun": apart}],
                       options={"ftol": 1e-14, "maxiter": 500})
        x = res.x
        for _ in range(50):  # Newton on the one equation, along its gradient (central differences)
            f = _lambda_min(x, radii)
            if abs(f) < tol:
                break
            h = 1e-7
            g = np.array([(_lambda_min(x + h * e, radii) - _lambda_min(x - h * e, radii)) / (2 * h)
                          for e in np.eye(len(x))])
            x = x - f * g / (g @ g)
        A = _vectors(x, radii)
        w, V = np.linalg.eigh(swapped(gram(A)))
        if abs(w[0]) > 1e-10 or w[1] < 1e-3 or min(apart(x)) < -1e-9:
            continue
        B = (V[:, 1:] * np.sqrt(w[1:])) @ rotation.T
        if congruence_distance(A, B) > margin / 2:
            return A, B
    raise RuntimeError(f"seed {seed}: no non-congruent pair in {attempts} attempts")


def pair_checks(A: np.ndarray, B: np.ndarray, l_max: int = 4, n_radial: int = 6, seed: int = 0) -> dict:
    """Exactness and non-congruence of a pair; degree-2/3/4 invariants from optinv's generated modules."""
    from optinv.generated import hop_l3_n3, hop_l3_n4, hop_l4_n2

    diff = lambda m, fa, fb: float(np.abs(m.forward(fa) - m.forward(fb)).max())  # noqa: E731
    fa, fb = neighbour_sums(A, l_max, n_radial, seed), neighbour_sums(B, l_max, n_radial, seed)
    d = (l_max + 1) ** 2
    return {
        "triplet_multiset_max_diff": float(np.abs(triplets(A) - triplets(B)).max()),
        "gram_residual": float(np.abs(gram(B) - swapped(gram(A))).max()),
        "congruence_distance_A2": congruence_distance(A, B),
        "hh_distances_A": sorted(np.linalg.norm(A[i] - A[j]) for i, j in itertools.combinations(range(4), 2)),
        "degree2_l4_max_diff": diff(hop_l4_n2, fa[:, :d], fb[:, :d]),
        "degree3_l3_max_diff": diff(hop_l3_n3, fa[:, :16], fb[:, :16]),
        "degree4_l3_max_diff": diff(hop_l3_n4, fa[:, :16], fb[:, :16]),
        "degree4_l3_scale": float(np.abs(hop_l3_n4.forward(fa[:, :16])).max()),
    }


def neighbour_sums(vectors: np.ndarray, l_max: int, n_radial: int, seed: int) -> np.ndarray:
    """Rows ``sum_j f_a(r_j) T_l(r_j_hat)`` (hippynn's tensor convention) for random radial functions ``f_a``.

    ``f_a(r) = sum_k c_ak exp(-(r - mu_k)^2)``: smooth, random, and different at the two radii.
    """
    import torch

    from optinv.hippynn import TensorExtractor

    r = np.linalg.norm(vectors, axis=1)
    tensors = TensorExtractor(l_max)(torch.as_tensor(vectors / r[:, None], dtype=torch.float64))
    T = torch.cat(tensors, dim=1).numpy()  # (n_neighbours, (l_max+1)^2)
    rng = np.random.default_rng([seed, 77])
    c, mu = rng.normal(size=(n_radial, 4)), np.linspace(0.8, 1.6, 4)
    f = c @ np.exp(-((r[None, :] - mu[:, None]) ** 2))  # (n_radial, n_neighbours)
    return np.ascontiguousarray(f @ T)


# -- (b) near-symmetric distortions ---------------------------------------------------------------


def distorted_methane(mode: str, eps: float, r_ch: float) -> np.ndarray:
    """Positions (C first) of the tetrahedral CH4 with bond length ``r_ch`` distorted by ``eps``.

    ``e-bend``: directions (x, y, z) -> (x, y, (1 + eps) z), renormalised (D2d), eps dimensionless;
    ``t2-bend``: H1..H3 tilted by ``eps`` degrees away from H0 about C (C3v umbrella);
    ``stretch``: the C-H0 bond longer by ``eps`` Angstrom (C3v).
    """
    u = TETRAHEDRON.copy()
    lengths = np.full(4, r_ch)
    if mode == "e-bend":
        u[:, 2] *= 1 + eps
    elif mode == "t2-bend":
        axis = u[0]
        for k in (1, 2, 3):
            perp = u[k] - (u[k] @ axis) * axis
            perp /= np.linalg.norm(perp)
            theta = np.arccos(np.clip(u[k] @ axis, -1, 1)) + np.radians(eps)
            u[k] = np.cos(theta) * axis + np.sin(theta) * perp
    elif mode == "stretch":
        lengths[0] += eps
    else:
        raise ValueError(f"mode: expected 'e-bend', 't2-bend' or 'stretch', got {mode!r}")
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return np.vstack([np.zeros(3), lengths[:, None] * u])


MODES = {"e-bend": [-0.2, -0.1, -0.05, -0.02, 0.0, 0.02, 0.05, 0.1, 0.2],
         "t2-bend": [-10.0, -5.0, -2.0, -1.0, 0.0, 1.0, 2.0, 5.0, 10.0],
         "stretch": [-0.05, -0.02, -0.01, 0.0, 0.01, 0.02, 0.05]}


SMOOTHNESS_EPS = (0.001, 0.01, 0.1, 1.0)  # T2-bend tilts (degrees) for the power-law probe


def power_law_exponent(eps, energies) -> float:
    """``p`` in ``E ~ eps^p`` between the two smallest amplitudes: 2 for a smooth minimum, 1 for a cusp."""
    (e1, e2), (a1, a2) = eps[:2], energies[:2]
    return float(np.log(abs(a2) / abs(a1)) / np.log(e2 / e1))


def curvature(eps, energies, window) -> float:
    """Second derivative at 0 from a quadratic + cubic fit over ``|eps| <= window``."""
    eps, energies = np.asarray(eps), np.asarray(energies)
    keep = np.abs(eps) <= window + 1e-12
    coeffs = np.polyfit(eps[keep], energies[keep], min(3, keep.sum() - 1))
    return float(2 * coeffs[-3])


# -- the trained models ---------------------------------------------------------------------------


def study_runs(runs_dir: Path, sizes=None) -> dict:
    """``{(variant, n_train): [run folders of every seed that has finished training]}``."""
    from examples.hiphop.trained import parse_run_name, test_metrics

    found: dict = {}
    for run in sorted(Path(runs_dir).glob("*_n*_s*")):
        if test_metrics(run) is None:
            continue
        variant, n_train, seed = parse_run_name(run)
        found.setdefault((variant, n_train), []).append(run)
    if sizes is None:  # the largest size of each variant
        best: dict = {}
        for variant, n_train in found:
            best[variant] = max(best.get(variant, 0), n_train)
        return {k: v for k, v in found.items() if k[1] == best[k[0]]}
    return {k: v for k, v in found.items() if k[1] in sizes}


def mean_std(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None, "values": v.tolist()}


def evaluate(runs: dict, pairs: list, curves: dict, numbers) -> list:
    """Each model's pair differences and distortion curves, mean and std over seeds."""
    import torch

    from examples.hiphop.trained import load_trained

    rows = []
    for (variant, n_train), folders in sorted(runs.items()):
        per_seed = {"seeds": [], "pairs": [], "pairs_carbon": [], "curves": {m: [] for m in curves}}
        for run in sorted(folders):
            model = load_trained(run, dtype=torch.float64)
            per_seed["seeds"].append(model.seed)
            dE, dC = [], []
            for pair in pairs:
                e, _, atoms = model.predict(numbers, np.stack([pair["positions_A"], pair["positions_B"]]),
                                            atom_energies=True)
                dE.append(e[0] - e[1])
                dC.append(atoms[0, 0] - atoms[1, 0])  # the C atom is atom 0
            per_seed["pairs"].append(dE)
            per_seed["pairs_carbon"].append(dC)
            for mode, curve in curves.items():
                e, _ = model.predict(numbers, np.stack(curve["positions"]))
                per_seed["curves"][mode].append(e - e[curve["eps"].index(0.0)])
            per_seed.setdefault("smooth", []).append(_smoothness(model, numbers, curves))
        row = {"variant": variant, "n_train": n_train, "seeds": per_seed["seeds"], "pairs": [], "curves": {}}
        for k in range(len(pairs)):
            row["pairs"].append({
                "E_A_minus_E_B_eV": mean_std([s[k] for s in per_seed["pairs"]]),
                "carbon_E_A_minus_E_B_eV": mean_std([s[k] for s in per_seed["pairs_carbon"]]),
                "abs_error_vs_gfn2_eV": mean_std([abs(s[k] - pairs[k]["gfn2_E_A_minus_E_B_eV"])
                                                  for s in per_seed["pairs"]])})
        for mode, curve in curves.items():
            seeds = np.array(per_seed["curves"][mode])
            window = curve["eps"][len(curve["eps"]) // 2 + 2]  # the two smallest amplitudes each side
            ratios = [curvature(curve["eps"], s, window) / curvature(curve["eps"], curve["gfn2_dE_eV"], window)
                      for s in seeds]
            row["curves"][mode] = {"dE_eV_mean": seeds.mean(0).tolist(),
                                   "dE_eV_std": (seeds.std(0, ddof=1) if len(seeds) > 1 else 0 * seeds[0]).tolist(),
                                   "max_abs_error_vs_gfn2_eV": mean_std(np.abs(seeds - curve["gfn2_dE_eV"]).max(1)),
                                   "curvature_ratio_vs_gfn2": mean_std(ratios)}
        smooth = np.array(per_seed["smooth"])  # (seeds, amplitudes)
        row["t2_bend_small"] = {"eps_deg": list(SMOOTHNESS_EPS), "dE_eV_mean": smooth.mean(0).tolist(),
                                "exponent_0.001_to_0.01": mean_std([power_law_exponent(SMOOTHNESS_EPS, e)
                                                                    for e in smooth]),
                                "exponent_0.1_to_1": mean_std([power_law_exponent(SMOOTHNESS_EPS[2:], e[2:])
                                                               for e in smooth])}
        rows.append(row)
    return rows


def _smoothness(model, numbers, curves) -> np.ndarray:
    """The T2-bend energy at tiny tilts (mean of +eps and -eps), relative to the tetrahedron."""
    r_ch = float(np.linalg.norm(np.asarray(curves["t2-bend"]["positions"][0])[1]))
    eps = [0.0, *SMOOTHNESS_EPS, *(-e for e in SMOOTHNESS_EPS)]
    e, _ = model.predict(numbers, np.stack([distorted_methane("t2-bend", x, r_ch) for x in eps]))
    k = len(SMOOTHNESS_EPS)
    return (e[1:1 + k] + e[1 + k:]) / 2 - e[0]


def render(path: Path) -> None:
    """Rewrite the markdown table and the plot from a results JSON (no models run)."""
    out = json.loads(Path(path).read_text())
    Path(path).with_suffix(".md").write_text(summary_markdown(out))
    plot(out, Path(path).with_suffix(".png"))


def main(argv=None) -> int:
    from examples.ace.data import METHANE_NUMBERS, xtb_energy_forces
    from examples.hiphop.md import equilibrium_methane
    from examples.hiphop.train import set_threads
    from examples.hiphop.trained import environment

    ap = argparse.ArgumentParser(prog="python -m examples.hiphop.degenerate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=STUDY_RUNS)
    ap.add_argument("--sizes", type=int, nargs="*", default=None, help="training sizes (default: the largest per variant)")
    ap.add_argument("--pairs", type=int, default=3, help="degenerate pairs (seeds 0..N-1)")
    ap.add_argument("--out", type=Path, default=RESULTS / "degenerate.json")
    ap.add_argument("--render", action="store_true", help="only redo the table and plot from --out")
    args = ap.parse_args(argv)
    if args.render:
        render(args.out)
        return 0
    set_threads(1)
    xtb = lambda pos: xtb_energy_forces(METHANE_NUMBERS, pos)[0]  # noqa: E731
    pairs = []
    for seed in range(args.pairs):
        radii = (1.09, 1.09) if seed == 0 else (1.05, 1.15)  # pair 0: all four H on a sphere
        A, B = degenerate_pair(seed, *radii)
        pos_a, pos_b = np.vstack([np.zeros(3), A]), np.vstack([np.zeros(3), B])
        pair = {"seed": seed, "radii_A": list(radii), "positions_A": pos_a.tolist(), "positions_B": pos_b.tolist(),
                "checks": pair_checks(A, B), "gfn2_E_A_minus_E_B_eV": xtb(pos_a) - xtb(pos_b)}
        pairs.append(pair)
        print(f"pair {seed}: GFN2 E_A - E_B = {1e3 * pair['gfn2_E_A_minus_E_B_eV']:+.2f} meV; "
              + ", ".join(f"{k} {v:.1e}" for k, v in pair["checks"].items() if k != "hh_distances_A"), flush=True)
    _, eq, r_ch = equilibrium_methane()
    curves = {}
    for mode, eps in MODES.items():
        positions = [distorted_methane(mode, e, r_ch) for e in eps]
        energies = np.array([xtb(p) for p in positions])
        curves[mode] = {"eps": eps, "positions": positions, "gfn2_dE_eV": energies - energies[eps.index(0.0)]}
    e0 = xtb(distorted_methane("t2-bend", 0.0, r_ch))
    gfn2_small = [(xtb(distorted_methane("t2-bend", e, r_ch)) + xtb(distorted_methane("t2-bend", -e, r_ch))) / 2 - e0
                  for e in SMOOTHNESS_EPS]
    runs = study_runs(args.runs, args.sizes)
    if not runs:
        ap.error(f"no trained runs under {args.runs}")
    for p in pairs:
        p["positions_A"], p["positions_B"] = np.array(p["positions_A"]), np.array(p["positions_B"])
    rows = evaluate(runs, pairs, curves, METHANE_NUMBERS)
    for p in pairs:
        p["positions_A"], p["positions_B"] = p["positions_A"].tolist(), p["positions_B"].tolist()
    for c in curves.values():
        c["positions"] = [np.asarray(p).tolist() for p in c["positions"]]
        c["gfn2_dE_eV"] = c["gfn2_dE_eV"].tolist()
    out = {"environment": environment(), "r_CH_A": r_ch, "pairs": pairs, "curves": curves, "models": rows,
           "t2_bend_small_gfn2": {"eps_deg": list(SMOOTHNESS_EPS), "dE_eV": gfn2_small,
                                  "note": "below ~0.01 degree the differences approach tblite's SCF precision"},
           "modes": {"e-bend": "eps: z-stretch factor of the H directions (D2d), bond lengths fixed",
                     "t2-bend": "eps: degrees, H1-H3 tilted away from H0 (C3v), bond lengths fixed",
                     "stretch": "eps: Angstrom added to one C-H bond (C3v)"}}
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    (args.out.with_suffix(".md")).write_text(summary_markdown(out))
    plot(out, args.out.with_suffix(".png"))
    print(summary_markdown(out))
    return 0


def summary_markdown(out: dict) -> str:
    """The README table: pair differences and curvature ratios per model."""
    def fmt(ms, scale=1e3):
        largest = max(abs(v) for v in ms["values"])
        if scale == 1e3 and largest < 1e-9:  # exactly equal up to rounding: say how small, in eV
            return f"0 (≤{max(largest, 1e-16):.0e} eV)"
        if ms["std"] is None:
            return f"{scale * ms['mean']:+.2f}"
        return f"{scale * ms['mean']:+.2f} ± {scale * ms['std']:.2f}"

    pairs, rows = out["pairs"], out["models"]
    lines = ["| model | n_train | seeds | " + " | ".join(f"pair {p['seed']}: E_A−E_B (meV) | C atom (meV)" for p in pairs)
             + " | " + " | ".join(f"{m} curvature / GFN2" for m in out["curves"]) + " |",
             "|---" * (3 + 2 * len(pairs) + len(out["curves"])) + "|",
             "| GFN2-xTB | | | " + " | ".join(f"{1e3 * p['gfn2_E_A_minus_E_B_eV']:+.2f} | –" for p in pairs)
             + " | " + " | ".join("1" for _ in out["curves"]) + " |"]
    for r in rows:
        cells = [f"{fmt(pr['E_A_minus_E_B_eV'])} | {fmt(pr['carbon_E_A_minus_E_B_eV'])}" for pr in r["pairs"]]
        curv = [fmt(r["curves"][m]["curvature_ratio_vs_gfn2"], 1) for m in out["curves"]]
        lines.append(f"| {r['variant']} | {r['n_train']} | {','.join(map(str, r['seeds']))} | " + " | ".join(cells)
                     + " | " + " | ".join(curv) + " |")
    lines += ["", "Smoothness at the tetrahedron: T2-bend energy at tiny tilts (meV, mean of ±eps), and the "
              "exponent p of E ~ eps^p (2: smooth minimum, 1: cusp):", "",
              "| model | n_train | " + " | ".join(f"{e:g}°" for e in SMOOTHNESS_EPS)
              + " | p (0.001-0.01°) | p (0.1-1°) |", "|---" * (4 + len(SMOOTHNESS_EPS)) + "|"]
    if "t2_bend_small_gfn2" in out:
        g = out["t2_bend_small_gfn2"]["dE_eV"]
        lines.append("| GFN2-xTB | | " + " | ".join(f"{1e3 * v:.3g}" for v in g)
                     + f" | {power_law_exponent(SMOOTHNESS_EPS, g):.2f} | {power_law_exponent(SMOOTHNESS_EPS[2:], g[2:]):.2f} |")
    for r in rows:
        sm = r["t2_bend_small"]
        lines.append(f"| {r['variant']} | {r['n_train']} | " + " | ".join(f"{1e3 * v:.3g}" for v in sm["dE_eV_mean"])
                     + f" | {sm['exponent_0.001_to_0.01']['mean']:.2f} | {sm['exponent_0.1_to_1']['mean']:.2f} |")
    lines += ["", "Energy curves (meV, E(eps) - E(0); mean over seeds):", ""]
    for mode, curve in out["curves"].items():
        eps = curve["eps"]
        lines.append(f"| {mode} eps | " + " | ".join(f"{e:g}" for e in eps) + " |")
        lines.append("|---" * (len(eps) + 1) + "|")
        lines.append("| GFN2-xTB | " + " | ".join(f"{1e3 * v:.1f}" for v in curve["gfn2_dE_eV"]) + " |")
        for r in rows:
            lines.append(f"| {r['variant']} n{r['n_train']} | "
                         + " | ".join(f"{1e3 * v:.1f}" for v in r["curves"][mode]["dE_eV_mean"]) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot(out: dict, path: Path) -> None:
    """The distortion curves: GFN2-xTB and every model at its largest training size (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(out["curves"])
    largest = {}
    for r in out["models"]:
        largest[r["variant"]] = max(largest.get(r["variant"], 0), r["n_train"])
    rows = [r for r in out["models"] if r["n_train"] == largest[r["variant"]]]
    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes) + 3, 4.4))
    labels = {"e-bend": "E bend: z-stretch factor of H directions", "t2-bend": "T2 bend: umbrella tilt (degrees)",
              "stretch": "one C-H bond stretched (Å)"}
    for ax, mode in zip(axes, modes):
        curve = out["curves"][mode]
        for r in rows:
            style = "--" if r["variant"].startswith("hipnn") else "-"
            ax.plot(curve["eps"], 1e3 * np.array(r["curves"][mode]["dE_eV_mean"]), style, marker=".",
                    label=f"{r['variant']} (n={r['n_train']})")
        ax.plot(curve["eps"], 1e3 * np.array(curve["gfn2_dE_eV"]), "k-", lw=2.5, label="GFN2-xTB")
        ax.set_xlabel(labels.get(mode, mode))
        ax.set_ylabel("E(eps) - E(0) (meV)")
        ax.grid(alpha=0.3)
    handles, labels_ = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels_, loc="center right", fontsize=8)
    fig.suptitle("tetrahedral CH4 distorted along symmetry-breaking modes: trained models vs GFN2-xTB")
    fig.tight_layout(rect=(0, 0, 1 - 3 / (5 * len(modes) + 3), 1))
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
