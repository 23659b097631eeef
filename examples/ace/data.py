"""Datasets that need no download: methane with GFN2-xTB (tblite) and perturbed bulk Cu with EMT (ASE).

``python -m examples.ace.data`` generates both (seeded, cached ``.npz`` under
``examples/ace/data/``, which git ignores) with a progress bar::

    python -m examples.ace.data                      # methane 50,000 + Cu 2,000, 2 processes
    python -m examples.ace.data --system methane --n 5000 --workers 2

* **methane**: C at the origin, four H at uniformly random directions and distances
  uniform in [0.8, 1.6] Angstrom, rejecting configurations with an H-H distance below
  0.6 Angstrom; energy and forces from GFN2-xTB via ``tblite.interface.Calculator``.
  Configuration ``k`` uses its own random stream ``default_rng([seed, k])``, so the data do
  not depend on the number of worker processes.
* **cu**: fcc Cu, 2x2x2 conventional supercell (32 atoms, a = 3.61 Angstrom), a random
  symmetric strain (each component uniform in +-4 %) and Gaussian displacements with a
  per-configuration amplitude uniform in [0.02, 0.20] Angstrom; periodic; ASE's EMT.

Units in the files: Angstrom, eV, eV/Angstrom.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
HARTREE_EV = 27.211386245988
BOHR_ANGSTROM = 0.529177210903

METHANE_NUMBERS = np.array([6, 1, 1, 1, 1])


# --------------------------------------------------------------------------- methane / GFN2-xTB
def methane_geometry(rng: np.random.Generator, r_min=0.8, r_max=1.6, hh_min=0.6) -> np.ndarray:
    """One random methane geometry ``(5, 3)`` (C first, at the origin)."""
    while True:
        d = rng.normal(size=(4, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        pos = np.zeros((5, 3))
        pos[1:] = d * rng.uniform(r_min, r_max, size=(4, 1))
        hh = np.linalg.norm(pos[1:, None] - pos[None, 1:], axis=-1)[np.triu_indices(4, 1)]
        if hh.min() >= hh_min:
            return pos


def xtb_energy_forces(numbers: np.ndarray, positions: np.ndarray, method: str = "GFN2-xTB"):
    """GFN2-xTB energy (eV) and forces (eV/Angstrom) of one molecule with tblite."""
    from tblite.interface import Calculator

    calc = Calculator(method, np.asarray(numbers), np.asarray(positions) / BOHR_ANGSTROM)
    calc.set("verbosity", 0)
    res = calc.singlepoint()
    energy = float(res.get("energy")) * HARTREE_EV
    forces = -np.asarray(res.get("gradient")) * HARTREE_EV / BOHR_ANGSTROM
    return energy, forces


def _methane_chunk(args):
    seed, start, stop = args
    pos = np.empty((stop - start, 5, 3))
    energy = np.empty(stop - start)
    forces = np.empty((stop - start, 5, 3))
    failed = 0
    t0 = time.perf_counter()
    for k in range(start, stop):
        rng = np.random.default_rng([seed, k])
        while True:  # redraw (from the same stream) if the SCF does not converge
            p = methane_geometry(rng)
            try:
                e, f = xtb_energy_forces(METHANE_NUMBERS, p)
            except Exception:  # tblite raises on SCF failure
                failed += 1
                continue
            break
        pos[k - start], energy[k - start], forces[k - start] = p, e, f
    return start, pos, energy, forces, failed, time.perf_counter() - t0


def generate_methane(n: int = 50_000, seed: int = 0, workers: int = 2, chunk: int = 250, progress: bool = True) -> dict:
    """Generate ``n`` methane configurations with GFN2-xTB energies and forces."""
    from tqdm import tqdm

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tasks = [(seed, s, min(s + chunk, n)) for s in range(0, n, chunk)]
    pos = np.empty((n, 5, 3))
    energy = np.empty(n)
    forces = np.empty((n, 5, 3))
    failed, cpu = 0, 0.0
    t0 = time.perf_counter()
    bar = tqdm(total=n, desc="methane GFN2-xTB", unit="conf", disable=not progress)
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            for start, p, e, f, nf, dt in pool.imap_unordered(_methane_chunk, tasks):
                pos[start : start + len(e)], energy[start : start + len(e)], forces[start : start + len(e)] = p, e, f
                failed, cpu = failed + nf, cpu + dt
                bar.update(len(e))
    else:
        for task in tasks:
            start, p, e, f, nf, dt = _methane_chunk(task)
            pos[start : start + len(e)], energy[start : start + len(e)], forces[start : start + len(e)] = p, e, f
            failed, cpu = failed + nf, cpu + dt
            bar.update(len(e))
    bar.close()
    wall = time.perf_counter() - t0
    return {
        "positions": pos, "numbers": METHANE_NUMBERS.copy(), "energy": energy, "forces": forces,
        "seed": seed, "method": "GFN2-xTB (tblite)", "scf_failures_redrawn": failed,
        "wall_s": wall, "cpu_s_per_config": cpu / n, "workers": workers,
    }


# --------------------------------------------------------------------------- Cu / EMT
def cu_structure(rng: np.random.Generator, size: int = 2, a: float = 3.61, strain: float = 0.04,
                 disp: tuple[float, float] = (0.02, 0.20)):
    """One perturbed fcc Cu supercell (ASE ``Atoms``, periodic)."""
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((size, size, size))
    eps = rng.uniform(-strain, strain, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    atoms.set_cell(atoms.get_cell() @ (np.eye(3) + eps), scale_atoms=True)
    sigma = rng.uniform(*disp)
    atoms.positions += rng.normal(scale=sigma, size=atoms.positions.shape)
    return atoms


def generate_cu(n: int = 2000, seed: int = 0, progress: bool = True) -> dict:
    """Generate ``n`` perturbed Cu cells with EMT energies and forces."""
    from ase.calculators.emt import EMT
    from tqdm import tqdm

    pos, cells, energy, forces = [], [], [], []
    t0 = time.perf_counter()
    for k in tqdm(range(n), desc="Cu EMT", unit="conf", disable=not progress):
        atoms = cu_structure(np.random.default_rng([seed, k]))
        atoms.calc = EMT()
        energy.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
        pos.append(atoms.get_positions())
        cells.append(np.asarray(atoms.get_cell()))
    wall = time.perf_counter() - t0
    return {
        "positions": np.array(pos), "cells": np.array(cells), "numbers": np.full(len(pos[0]), 29),
        "energy": np.array(energy), "forces": np.array(forces), "seed": seed, "method": "EMT (ASE)",
        "wall_s": wall, "cpu_s_per_config": wall / n, "workers": 1,
    }


# --------------------------------------------------------------------------- cache
DEFAULTS = {"methane": 50_000, "cu": 2_000}


def dataset_path(system: str, n: int, seed: int = 0, data_dir: Path | None = None) -> Path:
    tag = {"methane": "methane_gfn2", "cu": "cu_emt"}[system]
    return Path(data_dir or DATA_DIR) / f"{tag}_n{n}_seed{seed}.npz"


def load_dataset(system: str, n: int | None = None, seed: int = 0, workers: int = 2, data_dir: Path | None = None,
                 progress: bool = True) -> dict:
    """Load the cached dataset, generating (and caching) it first if missing."""
    if system not in DEFAULTS:
        raise ValueError(f"system: expected one of {sorted(DEFAULTS)}, got {system!r}")
    n = int(n or DEFAULTS[system])
    path = dataset_path(system, n, seed, data_dir)
    if not path.exists():
        data = generate_methane(n, seed, workers, progress=progress) if system == "methane" else generate_cu(n, seed, progress)
        data["machine"] = f"{platform.node()} {os.cpu_count()} cpus"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in data.items()})
        tmp.replace(path)
    with np.load(path, allow_pickle=False) as f:
        return {k: (f[k].item() if f[k].ndim == 0 else f[k]) for k in f.files}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m examples.ace.data", description=__doc__.split("\n\n")[0])
    ap.add_argument("--system", choices=["methane", "cu", "all"], default="all")
    ap.add_argument("--n", type=int, default=None, help="configurations (default: methane 50000, cu 2000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="processes for methane (default 2)")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = ap.parse_args(argv)
    systems = ["methane", "cu"] if args.system == "all" else [args.system]
    for system in systems:
        path = dataset_path(system, int(args.n or DEFAULTS[system]), args.seed, args.data_dir)
        cached = path.exists()
        data = load_dataset(system, args.n, args.seed, args.workers, args.data_dir)
        n = len(data["energy"])
        extra = f", SCF failures redrawn {data['scf_failures_redrawn']}" if "scf_failures_redrawn" in data else ""
        print(f"{system}: {n} configurations -> {path} ({'cached' if cached else 'generated'}); "
              f"{data['cpu_s_per_config'] * 1e3:.2f} ms CPU per configuration, wall {data['wall_s']:.1f} s with "
              f"{data['workers']} worker(s){extra}; energy {data['energy'].mean():.3f} +- {data['energy'].std():.3f} eV, "
              f"|F| rms {np.sqrt((data['forces'] ** 2).mean()):.3f} eV/A")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
