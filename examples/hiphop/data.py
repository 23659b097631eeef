"""Training data for the HIP-HOP-NN study, generated in parallel with Dask.

Two systems, energies and forces from GFN2-xTB (tblite), no download:

* **methane** (default 200,000 configurations): the random CH4 geometries of
  ``examples/ace`` (C at the origin, four H in random directions at 0.8-1.6 A,
  H-H >= 0.6 A).
* **ethanol** (default 20,000): the harder set.  ASE's ethanol geometry, every
  atom displaced by Gaussian noise of a per-configuration amplitude uniform in
  [0.03, 0.12] A, so that bond stretches, bends and torsions all vary; 9 atoms
  and three elements.

Configuration ``k`` of a set uses its own random stream ``default_rng([seed,
system, k])``: the data do not depend on the number of workers or on the chunk
size.  Chunks go to ``examples/hiphop/data/<set>/chunk_<start>.npz`` as they
finish; a run that is stopped and started again computes only the missing
chunks; the merged set is ``<set>.npz`` beside them.

    python -m examples.hiphop.data                            # methane 200k + ethanol 20k, local cluster
    python -m examples.hiphop.data --system ethanol --n 2000 --workers 2
    python -m examples.hiphop.data --scheduler tcp://host:8786 # a running Dask cluster
    python -m examples.hiphop.data --scaling 1000              # 1 vs 2 workers on a small set

On a multi-node cluster, start ``dask scheduler`` and, on each node where this
repository is installed (``pip install -e '.[hiphop]'``), ``PYTHONPATH=/path/to/repo
OMP_NUM_THREADS=1 dask worker ADDRESS --nthreads 1 --nworkers N`` (``examples`` is not
an installed package), then pass ``--scheduler ADDRESS``.  Checked here with a
separate scheduler and worker process on one machine.

Units: Angstrom, eV, eV/Angstrom.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
SYSTEMS = {"methane": 200_000, "ethanol": 20_000}
SYSTEM_IDS = {"methane": 1, "ethanol": 2}  # part of each configuration's random stream


# -- one configuration ------------------------------------------------------------------------


def ethanol_reference():
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    return atoms.get_atomic_numbers(), atoms.get_positions()


def configuration(system: str, seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers and positions of configuration ``k``."""
    rng = np.random.default_rng([seed, SYSTEM_IDS[system], k])
    if system == "methane":
        from examples.ace.data import METHANE_NUMBERS, methane_geometry

        return METHANE_NUMBERS.copy(), methane_geometry(rng)
    numbers, ref = ethanol_reference()
    amplitude = rng.uniform(0.03, 0.12)
    return numbers, ref + rng.normal(scale=amplitude, size=ref.shape)


def compute_chunk(system: str, seed: int, start: int, stop: int) -> dict:
    """Energies and forces of configurations ``start..stop-1`` (runs on a Dask worker)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from examples.ace.data import xtb_energy_forces

    numbers = positions = None
    energy = np.empty(stop - start)
    forces = None
    failed = 0
    t_cpu = time.process_time()
    for i, k in enumerate(range(start, stop)):
        attempt = 0
        while True:  # an SCF that does not converge: redraw from a derived stream
            z, pos = configuration(system, seed + 1_000_003 * attempt, k)
            try:
                e, f = xtb_energy_forces(z, pos)
                break
            except Exception:  # tblite raises on SCF failure
                failed += 1
                attempt += 1
        if positions is None:
            numbers = z
            positions = np.empty((stop - start,) + pos.shape)
            forces = np.empty((stop - start,) + pos.shape)
        positions[i], energy[i], forces[i] = pos, e, f
    return {"start": start, "numbers": numbers, "positions": positions, "energy": energy, "forces": forces,
            "scf_failures_redrawn": failed, "cpu_s": time.process_time() - t_cpu, "host": platform.node()}


# -- the parallel driver ----------------------------------------------------------------------


def set_dir(system: str, n: int, seed: int, data_dir: Path = DATA_DIR) -> Path:
    return Path(data_dir) / f"{system}_gfn2_n{n}_seed{seed}"


def _client(scheduler: str | None, workers: int):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           env={"OMP_NUM_THREADS": "1"})
    return Client(cluster), cluster


def generate(system: str, n: int | None = None, seed: int = 0, workers: int = 2, chunk: int = 500,
             scheduler: str | None = None, data_dir: Path = DATA_DIR, progress: bool = True) -> Path:
    """Compute the missing chunks of a set on Dask and merge them; returns the merged ``.npz``."""
    from dask.distributed import as_completed
    from tqdm import tqdm

    if system not in SYSTEMS:
        raise ValueError(f"system: expected one of {sorted(SYSTEMS)}, got {system!r}")
    n = int(n or SYSTEMS[system])
    folder = set_dir(system, n, seed, data_dir)
    merged = folder.with_suffix(".npz")
    if merged.exists():
        return merged
    folder.mkdir(parents=True, exist_ok=True)
    starts = range(0, n, chunk)
    todo = [s for s in starts if not (folder / f"chunk_{s:08d}_{min(s + chunk, n):08d}.npz").exists()]
    t0 = time.perf_counter()
    cpu, failed = 0.0, 0
    if todo:
        client, cluster = _client(scheduler, workers)
        try:
            workers = len(client.scheduler_info()["workers"])  # what ran, not what was asked for
            futures = [client.submit(compute_chunk, system, seed, s, min(s + chunk, n), pure=False) for s in todo]
            bar = tqdm(total=n, initial=n - sum(min(s + chunk, n) - s for s in todo),
                       desc=f"{system} GFN2-xTB ({workers} workers)",
                       unit="conf", disable=not progress)
            for future in as_completed(futures):
                out = future.result()
                s = out["start"]
                path = folder / f"chunk_{s:08d}_{s + len(out['energy']):08d}.npz"
                tmp = path.with_suffix(".tmp.npz")
                np.savez(tmp, **{k: np.asarray(v) for k, v in out.items()})
                tmp.replace(path)  # a chunk file is complete or absent
                cpu, failed = cpu + out["cpu_s"], failed + out["scf_failures_redrawn"]
                bar.update(len(out["energy"]))
                future.release()
            bar.close()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    wall = time.perf_counter() - t0
    parts = sorted(folder.glob("chunk_*.npz"))
    loaded = [dict(np.load(p)) for p in parts]
    data = {k: np.concatenate([d[k] for d in loaded]) for k in ("positions", "energy", "forces")}
    assert len(data["energy"]) == n, f"{folder}: {len(data['energy'])} configurations, expected {n}"
    info = {"system": system, "n": n, "seed": seed, "method": "GFN2-xTB (tblite)",
            "scf_failures_redrawn": int(sum(int(d["scf_failures_redrawn"]) for d in loaded)),
            "cpu_s_per_config": float(sum(float(d["cpu_s"]) for d in loaded) / n),
            "last_run": {"wall_s": wall, "chunks": len(todo), "workers": workers, "scheduler": scheduler or "LocalCluster"},
            "machine": f"{platform.node()} {os.cpu_count()} cpus"}
    tmp = merged.with_suffix(".tmp.npz")
    np.savez(tmp, numbers=loaded[0]["numbers"], info=json.dumps(info), **data)
    tmp.replace(merged)
    return merged


def load(system: str, n: int | None = None, seed: int = 0, **kwargs) -> dict:
    """The merged set (generated first if missing): numbers, positions, energy, forces, info."""
    path = generate(system, n, seed, **kwargs)
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    data["info"] = json.loads(str(data["info"]))
    return data


def scaling(n: int, system: str = "methane", chunk: int = 50, out: Path | None = None) -> dict:
    """Wall time for the same ``n`` configurations with 1 and with 2 local workers (fresh folders)."""
    import shutil
    import tempfile

    result = {"system": system, "n": n, "chunk": chunk, "machine": f"{platform.node()} {os.cpu_count()} cpus",
              "load_average_before": os.getloadavg()}
    for workers in (1, 2):
        tmp = Path(tempfile.mkdtemp(prefix="hiphop-scaling-"))
        t0 = time.perf_counter()
        path = generate(system, n, seed=12345, workers=workers, chunk=chunk, data_dir=tmp, progress=False)
        result[f"wall_s_{workers}_workers"] = time.perf_counter() - t0  # cluster start-up included
        with np.load(path) as f:
            info = json.loads(str(f["info"]))
        result[f"worker_cpu_s_{workers}_workers"] = info["cpu_s_per_config"] * n
        shutil.rmtree(tmp)
    result["speedup"] = result["wall_s_1_workers"] / result["wall_s_2_workers"]
    result["note"] = ("wall times on a machine shared with other jobs: the load average says how many cores "
                      "were busy before; worker CPU seconds show the work itself did not change")
    result["load_average_after"] = os.getloadavg()
    if out:
        Path(out).write_text(json.dumps(result, indent=2))
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m examples.hiphop.data", description=__doc__.split("\n\n")[0])
    ap.add_argument("--system", choices=[*SYSTEMS, "all"], default="all")
    ap.add_argument("--n", type=int, default=None, help="configurations (default: methane 200000, ethanol 20000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="local Dask worker processes (default 2)")
    ap.add_argument("--chunk", type=int, default=500, help="configurations per Dask task and per file")
    ap.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (default: a LocalCluster)")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--scaling", type=int, default=None, metavar="N",
                    help="only measure 1 vs 2 local workers on N methane configurations")
    args = ap.parse_args(argv)
    if args.scaling:
        out = Path(__file__).resolve().parent / "results" / "dask_scaling.json"
        out.parent.mkdir(exist_ok=True)
        print(json.dumps(scaling(args.scaling, out=out), indent=2))
        return 0
    for system in (list(SYSTEMS) if args.system == "all" else [args.system]):
        data = load(system, args.n, args.seed, workers=args.workers, chunk=args.chunk, scheduler=args.scheduler,
                    data_dir=args.data_dir)
        info = data["info"]
        print(f"{system}: {len(data['energy'])} configurations of {len(data['numbers'])} atoms; "
              f"{info['cpu_s_per_config'] * 1e3:.2f} ms CPU each; last run {info['last_run']}; "
              f"SCF failures redrawn {info['scf_failures_redrawn']}; energy {data['energy'].mean():.3f} "
              f"+- {data['energy'].std():.3f} eV; |F| rms {np.sqrt((data['forces'] ** 2).mean()):.3f} eV/A")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
