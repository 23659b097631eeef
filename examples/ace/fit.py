"""The comparison: the same MLP on (a) the full linear ACE basis and (b) the functionally independent subset.

``python -m examples.ace.fit`` (default settings, under 30 minutes on 2 cores) fits, for each
system (methane / GFN2-xTB, bulk Cu / EMT), each ``(n_rad, l_max, nu_max)`` setting, each
descriptor set, each training-set size and each seed, a per-element MLP on energies and
forces, and writes to ``examples/ace/results/``:

* ``fit_runs.json``   every run (rewritten after each one; ``--resume`` skips finished runs),
* ``comparison.md``   the table (mean +- std over seeds) with machine information,
* ``comparison.png``  test errors against training-set size,
* ``sets/*.json``     the descriptor sets used (einsum strings of every factor).

Everything but the data split is seeded by the run's seed: MLP initialisation, batch order
and which training configurations are drawn from the pool; the test set is fixed.  Both
descriptor sets see exactly the same training configurations, batches and optimiser budget.

``python -m examples.ace.fit --report-only`` rebuilds the table and plot from ``fit_runs.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data import load_dataset
from .descriptors import ACEDescriptor, Structures, energy_and_forces_from_base
from .sets import DescriptorSet, independent_set, linear_ace_set

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class SystemConfig:
    name: str
    cutoff: float
    species: list[int]
    n_data: int
    n_test: int
    sizes: list[int]  # training-set sizes (configurations)
    batch: int  # configurations per optimiser step
    steps: int  # optimiser steps per fit (the training budget)
    timing_configs: int  # configurations used to time the descriptors
    title: str = ""


SYSTEMS = {
    "methane": SystemConfig("methane", 3.5, [1, 6], 50_000, 2_000, [250, 1000, 4000], 32, 1500, 400,
                            "CH4, GFN2-xTB (tblite)"),
    "cu": SystemConfig("cu", 5.0, [29], 2_000, 200, [10, 40, 160], 4, 800, 20, "Cu fcc 32-atom cells, EMT"),
}
DEFAULT_SETTINGS = [(3, 2, 3), (3, 2, 4), (4, 3, 3)]
DEFAULT_SEEDS = [0, 1, 2]


@dataclass
class FitConfig:
    width: int = 64
    depth: int = 2
    lr: float = 3e-3
    lr_final: float = 3e-5
    force_weight: float = 1.0
    dtype: torch.dtype = torch.float32
    backend: str = "poly"
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- model
class ElementMLP(torch.nn.Module):
    """One MLP per element on standardised descriptors: atomic energy = shift + scale * MLP(x)."""

    def __init__(self, species, n_in, width, depth, mean, std, shift, scale):
        super().__init__()
        self.species = list(species)
        self.nets = torch.nn.ModuleList()
        for _ in self.species:
            layers, d = [], n_in
            for _ in range(depth):
                layers += [torch.nn.Linear(d, width), torch.nn.SiLU()]
                d = width
            layers.append(torch.nn.Linear(d, 1))
            self.nets.append(torch.nn.Sequential(*layers))
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.shift, self.scale = float(shift), float(scale)

    def forward(self, D: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(D.shape[0], dtype=D.dtype, device=D.device)
        for k, z in enumerate(self.species):
            idx = torch.nonzero(numbers == z).squeeze(1)
            if idx.numel() == 0:
                continue
            x = (D.index_select(0, idx) - self.mean[k]) / self.std[k]
            out = out.index_add(0, idx, self.nets[k](x).squeeze(-1))
        return self.shift + self.scale * out


def _descriptor_stats(desc: ACEDescriptor, A: torch.Tensor, s: Structures, species, dtype, chunk=20_000):
    with torch.no_grad():
        D = torch.cat([desc.backend(A[a : a + chunk]) for a in range(0, len(A), chunk)])
    numbers = torch.as_tensor(s.numbers)
    mean = torch.zeros(len(species), D.shape[1], dtype=dtype)
    std = torch.ones(len(species), D.shape[1], dtype=dtype)
    for k, z in enumerate(species):
        Dz = D[numbers == z]
        if len(Dz):
            mean[k] = Dz.mean(0)
            std[k] = Dz.std(0).clamp_min(1e-6 * Dz.std(0).max().clamp_min(1e-12))
    return mean, std


# --------------------------------------------------------------------------- data
def prepare_system(cfg: SystemConfig, data_dir=None, progress=True) -> dict:
    data = load_dataset(cfg.name, cfg.n_data, data_dir=data_dir, progress=progress)
    if cfg.name == "methane":
        structs = Structures.from_molecules(data["positions"], data["numbers"], cfg.cutoff)
    else:
        from ase import Atoms

        atoms = [Atoms(numbers=data["numbers"], positions=p, cell=c, pbc=True)
                 for p, c in zip(data["positions"], data["cells"])]
        structs = Structures.from_atoms(atoms, cfg.cutoff)
    n = len(data["energy"])
    test = np.arange(n - cfg.n_test, n)
    pool = np.arange(n - cfg.n_test)
    return {"structs": structs, "energy": data["energy"], "forces": data["forces"].reshape(-1, 3),
            "test": test, "pool": pool}


def _targets(d: dict, configs: np.ndarray, dtype):
    s = d["structs"].subset(configs)
    E = torch.as_tensor(d["energy"][configs], dtype=dtype)
    atoms = np.concatenate([np.arange(d["structs"].atom_offsets[c], d["structs"].atom_offsets[c + 1]) for c in configs])
    F = torch.as_tensor(d["forces"][atoms], dtype=dtype)
    return s, E, F


# --------------------------------------------------------------------------- one fit
def evaluate(model, desc, d, configs, dtype, chunk=500) -> dict:
    se_e, se_f, ae_e, n_e, n_f = 0.0, 0.0, 0.0, 0, 0
    for a in range(0, len(configs), chunk):
        s, E, F = _targets(d, configs[a : a + chunk], dtype)
        A, J = desc.base_and_jacobian(s, dtype)
        Ep, Fp = energy_and_forces_from_base(model, desc.backend, A, J, s)
        nat = torch.as_tensor(np.diff(s.atom_offsets), dtype=dtype)
        err = ((Ep.detach() - E) / nat).double()
        se_e += float((err ** 2).sum())
        ae_e += float(err.abs().sum())
        n_e += len(E)
        se_f += float(((Fp.detach() - F).double() ** 2).sum())
        n_f += F.numel()
    return {"energy_rmse_meV_per_atom": 1e3 * math.sqrt(se_e / n_e), "energy_mae_meV_per_atom": 1e3 * ae_e / n_e,
            "force_rmse_meV_per_A": 1e3 * math.sqrt(se_f / n_f)}


def train_one(desc: ACEDescriptor, d: dict, cfg: SystemConfig, size: int, seed: int, fc: FitConfig) -> dict:
    dtype = fc.dtype
    rng = np.random.default_rng([seed, size, 12345])
    train = np.sort(rng.choice(d["pool"], size=size, replace=False))
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    s_train, E_train, F_train = _targets(d, train, dtype)
    A_train, J_train = desc.base_and_jacobian(s_train, dtype)
    nat_train = torch.as_tensor(np.diff(s_train.atom_offsets), dtype=dtype)
    mean, std = _descriptor_stats(desc, A_train, s_train, cfg.species, dtype)
    e_atom = E_train / nat_train
    f_rms = float(F_train.pow(2).mean().sqrt())
    model = ElementMLP(cfg.species, desc.n_features, fc.width, fc.depth, mean, std, float(e_atom.mean()), f_rms)
    var_e = float(e_atom.var()) if size > 1 else 1.0
    var_f = f_rms ** 2
    opt = torch.optim.Adam(model.parameters(), lr=fc.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=fc.lr_final)
    batch = min(cfg.batch, size)
    order = np.array([], dtype=np.int64)
    losses = []
    for step in range(cfg.steps):
        if len(order) < batch:
            order = np.concatenate([order, rng.permutation(size)])
        ids, order = np.sort(order[:batch]), order[batch:]
        s, atoms, pairs = s_train.subset(ids, return_index=True)
        E, F = E_train[ids], F_train[atoms]
        nat = nat_train[ids]
        Ep, Fp = energy_and_forces_from_base(model, desc.backend, A_train[atoms], J_train[pairs], s, create_graph=True)
        loss = ((Ep - E) / nat).pow(2).mean() / var_e + fc.force_weight * (Fp - F).pow(2).mean() / var_f
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.detach().item())
    train_time = time.perf_counter() - t0
    test = evaluate(model, desc, d, d["test"], dtype)
    return {"train_time_s": train_time, "final_loss": float(np.mean(losses[-20:])), **test}


def time_descriptors(desc: ACEDescriptor, d: dict, n_configs: int, dtype, repeats: int = 3) -> dict:
    """Descriptor time per atom: values only, and values + gradient (a VJP, as for forces)."""
    s = d["structs"].subset(d["test"][:n_configs])
    pos = torch.as_tensor(s.positions, dtype=dtype)
    t_val, t_grad = [], []
    with torch.no_grad():
        desc(pos, s)  # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            desc(pos, s)
        t_val.append(time.perf_counter() - t0)
        p = pos.clone().requires_grad_(True)
        t0 = time.perf_counter()
        D = desc(p, s)
        torch.autograd.grad(D.sum(), p)
        t_grad.append(time.perf_counter() - t0)
    return {"desc_us_per_atom": 1e6 * min(t_val) / s.n_atoms, "desc_grad_us_per_atom": 1e6 * min(t_grad) / s.n_atoms}


# --------------------------------------------------------------------------- reporting
def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "platform": platform.platform()}


def _group(runs):
    out: dict[tuple, list[dict]] = {}
    for r in runs:
        key = (r["system"], tuple(r["setting"]), r["kind"], r["size"])
        out.setdefault(key, []).append(r)
    return out


def _ms(values, fmt="{:.1f}"):
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return fmt.format(v[0])
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1))}"


def write_report(payload: dict, out_dir: Path) -> tuple[Path, Path | None]:
    runs = payload["runs"]
    groups = _group(runs)
    lines = ["# ACE descriptors: full linear basis vs functionally independent subset", ""]
    info = payload.get("machine", {})
    lines.append(f"Machine: {info.get('cpu', '?')}, {info.get('cores', '?')} cores, torch {info.get('torch', '?')} "
                 f"({info.get('torch_threads', '?')} threads), Python {info.get('python', '?')}; "
                 f"load average at start {payload.get('load_start', '?')}, at end {payload.get('load_end', '?')}.")
    if payload.get("wall_s") is not None:
        lines.append(f"Total wall time {payload['wall_s'] / 60:.1f} min; backend `{payload.get('backend')}`; "
                     f"MLP {payload.get('mlp')}.")
    lines.append("")
    lines.append("Errors on the fixed held-out test set, mean ± sample std over seeds "
                 f"({', '.join(str(s) for s in payload.get('seeds', []))}); energy RMSE per atom, force RMSE per "
                 "component. K = descriptors per atom. Descriptor time: per atom, values only / values + gradient "
                 f"w.r.t. positions, float32, `{payload.get('backend')}` invariant backend, on this machine.")
    lines.append("")
    for system in dict.fromkeys(r["system"] for r in runs):
        cfg = payload.get("systems", {}).get(system, {})
        lines.append(f"## {cfg.get('title', system)}")
        lines.append("")
        lines.append(f"Cutoff {cfg.get('cutoff')} Å; {cfg.get('steps')} optimiser steps of {cfg.get('batch')} "
                     f"configurations per fit; test set {cfg.get('n_test')} configurations.")
        lines.append("")
        lines.append("| setting (n_rad, l_max, nu_max) | set | K | desc µs/atom (val / +grad) | train configs | "
                     "train time s | E RMSE meV/atom | F RMSE meV/Å | seeds |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for (sys_, setting, kind, size), rs in groups.items():
            if sys_ != system:
                continue
            r0 = rs[0]
            lines.append(
                f"| {setting} | {kind} | {r0['n_features']} | {r0['desc_us_per_atom']:.1f} / "
                f"{r0['desc_grad_us_per_atom']:.1f} | {size} | {_ms([r['train_time_s'] for r in rs])} | "
                f"{_ms([r['energy_rmse_meV_per_atom'] for r in rs])} | {_ms([r['force_rmse_meV_per_A'] for r in rs], '{:.0f}')} "
                f"| {len(rs)} |")
        lines.append("")
    md = out_dir / "comparison.md"
    md.write_text("\n".join(lines) + "\n")
    png = None
    try:
        png = plot(payload, out_dir / "comparison.png")
    except ImportError:  # matplotlib missing: table only
        pass
    return md, png


def plot(payload: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import NullFormatter

    runs = payload["runs"]
    systems = list(dict.fromkeys(r["system"] for r in runs))
    same_as = _identical_sets(path.parent)
    fig, axes = plt.subplots(2, len(systems), figsize=(5.2 * len(systems), 7.5), squeeze=False)
    settings = list(dict.fromkeys(tuple(r["setting"]) for r in runs))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, system in enumerate(systems):
        for row, (metric, label) in enumerate([("energy_rmse_meV_per_atom", "energy RMSE (meV/atom)"),
                                               ("force_rmse_meV_per_A", "force RMSE (meV/Å)")]):
            ax = axes[row][c]
            for si, setting in enumerate(settings):
                for kind, style, marker in (("linear", "--", "s"), ("independent", "-", "o")):
                    rs = [r for r in runs if r["system"] == system and tuple(r["setting"]) == setting and r["kind"] == kind]
                    if not rs:
                        continue
                    sizes = sorted({r["size"] for r in rs})
                    m = [np.mean([r[metric] for r in rs if r["size"] == n]) for n in sizes]
                    e = [np.std([r[metric] for r in rs if r["size"] == n]) for n in sizes]
                    note = f" (same set as {same_as[(kind, setting)]})" if (kind, setting) in same_as else ""
                    ax.errorbar(sizes, m, yerr=e, ls=style, marker=marker, color=colours[si % len(colours)], capsize=3,
                                label=f"{kind} {setting}, K={rs[0]['n_features']}{note}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ticks = sorted({r["size"] for r in runs if r["system"] == system})
            ax.set_xticks(ticks)
            ax.set_xticklabels([str(t) for t in ticks])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("training configurations")
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
            if row == 0:
                ax.set_title(payload.get("systems", {}).get(system, {}).get("title", system))
            if row == 0 and c == 0:
                ax.legend(fontsize=7)
    fig.suptitle("ACE: full linear basis (dashed) vs functionally independent subset (solid); mean ± std over seeds",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _identical_sets(out_dir: Path) -> dict[tuple, tuple]:
    """``(kind, setting) -> earlier setting`` for descriptor sets that are the same list of invariants."""
    seen: dict[tuple, tuple] = {}
    same: dict[tuple, tuple] = {}
    for f in sorted((out_dir / "sets").glob("*.json")):
        data = json.loads(f.read_text())
        setting = (data["n_rad"], data["l_max"], data["nu_max"])
        key = (data["kind"], data["n_rad"], data["l_max"], tuple(data["connected"]), tuple(map(tuple, data["products"])))
        if key in seen:
            same[(data["kind"], setting)] = seen[key]
        else:
            seen[key] = setting
    return same


# --------------------------------------------------------------------------- driver
def _setting(text: str) -> tuple[int, int, int]:
    parts = tuple(int(p) for p in text.replace("(", "").replace(")", "").split(","))
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"setting: expected 'n_rad,l_max,nu_max', got {text!r}")
    return parts


def build_sets(settings, out_dir: Path) -> dict[tuple, dict[str, DescriptorSet]]:
    sets = {}
    (out_dir / "sets").mkdir(parents=True, exist_ok=True)
    for st in settings:
        sets[st] = {"linear": linear_ace_set(*st), "independent": independent_set(*st)}
        for kind, ds in sets[st].items():
            (out_dir / "sets" / f"{kind}_{st[0]}_{st[1]}_{st[2]}.json").write_text(ds.to_json())
    return sets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m examples.ace.fit", description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    ap.add_argument("--settings", nargs="+", type=_setting, default=DEFAULT_SETTINGS,
                    help="n_rad,l_max,nu_max triples (default: 3,2,3 3,2,4 4,3,3)")
    ap.add_argument("--seeds", nargs="+", type=int, default=DEFAULT_SEEDS)
    ap.add_argument("--sizes", nargs="+", type=int, default=None, help="training-set sizes (default per system)")
    ap.add_argument("--steps", type=int, default=None, help="optimiser steps per fit (default per system)")
    ap.add_argument("--backend", default="codegen",
                    help="invariant backend: codegen (default: optinv-generated C kernels), poly, einsum")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: small ops; on a shared machine more threads can be much slower)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--resume", action="store_true", help="keep finished runs from fit_runs.json and skip them")
    ap.add_argument("--report-only", action="store_true", help="rebuild comparison.md/png from fit_runs.json")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (1 seed, small sizes, few steps)")
    args = ap.parse_args(argv)
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    runs_path = out_dir / "fit_runs.json"
    if args.report_only:
        payload = json.loads(runs_path.read_text())
        md, png = write_report(payload, out_dir)
        print(md.read_text())
        return 0

    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    systems = {name: SystemConfig(**{**SYSTEMS[name].__dict__}) for name in args.systems}
    for cfg in systems.values():
        if args.sizes:
            cfg.sizes = list(args.sizes)
        if args.steps:
            cfg.steps = args.steps
        if args.quick:
            cfg.sizes, cfg.steps = cfg.sizes[:2], min(cfg.steps, 30)
            cfg.n_test = min(cfg.n_test, 100)
            cfg.timing_configs = min(cfg.timing_configs, 20)
    seeds = args.seeds[:1] if args.quick else args.seeds
    fc = FitConfig(backend=args.backend)
    t_start = time.perf_counter()
    payload = {"machine": machine_info(), "load_start": [round(x, 2) for x in os.getloadavg()],
               "backend": fc.backend, "seeds": seeds,
               "mlp": f"per-element {fc.depth}x{fc.width} SiLU, Adam lr {fc.lr}->{fc.lr_final} cosine, "
                      f"force weight {fc.force_weight}, {str(fc.dtype).replace('torch.', '')}",
               "systems": {k: v.__dict__ for k, v in systems.items()}, "runs": []}
    done = {}
    if args.resume and runs_path.exists():
        for r in json.loads(runs_path.read_text())["runs"]:
            done[(r["system"], tuple(r["setting"]), r["kind"], r["size"], r["seed"])] = r
    sets = build_sets(args.settings, out_dir)
    jobs = [(sy, st, kind, n, seed) for sy in systems for st in args.settings for n in systems[sy].sizes
            for seed in seeds for kind in ("linear", "independent")]
    bar = tqdm(total=len(jobs), desc="fits", unit="fit")
    for sy, cfg in systems.items():
        d = prepare_system(cfg, args.data_dir)
        for st in args.settings:
            descs, timing = {}, {}
            for kind, ds in sets[st].items():
                descs[kind] = ACEDescriptor(ds, cfg.cutoff, cfg.species, backend=fc.backend)
                timing[kind] = time_descriptors(descs[kind], d, cfg.timing_configs, fc.dtype)
            for n in cfg.sizes:
                for seed in seeds:
                    for kind in ("linear", "independent"):
                        key = (sy, st, kind, n, seed)
                        bar.set_postfix_str(f"{sy} {st} {kind} n={n} seed={seed}")
                        if key in done:
                            payload["runs"].append(done[key])
                        else:
                            res = train_one(descs[kind], d, cfg, n, seed, fc)
                            payload["runs"].append({"system": sy, "setting": list(st), "kind": kind, "size": n,
                                                    "seed": seed, "n_features": len(sets[st][kind]),
                                                    "n_connected": len(sets[st][kind].connected),
                                                    **timing[kind], **res})
                        payload["wall_s"] = time.perf_counter() - t_start
                        payload["load_end"] = [round(x, 2) for x in os.getloadavg()]
                        runs_path.write_text(json.dumps(payload, indent=1) + "\n")
                        bar.update(1)
    bar.close()
    md, png = write_report(payload, out_dir)
    print(md.read_text())
    print(f"wrote {runs_path}, {md}" + (f", {png}" if png else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
