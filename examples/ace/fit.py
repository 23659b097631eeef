"""The comparison: the same MLP recipe on (a) the full linear ACE basis, (b) the functionally
independent subset and (c) the flexible subset (complete on degenerate strata too).

``python -m examples.ace.fit`` (default settings, about 35 minutes on 2 busy cores) fits, for each
system (methane / GFN2-xTB, bulk Cu / EMT), each ``(n_rad, l_max, nu_max)`` setting, each
descriptor set, each training-set size and each seed, a per-element MLP on energies and
forces, trained to convergence: Adam, learning rate halved when the validation loss stalls,
early stopping on a fixed validation set (best weights kept).  The MLP width follows one rule
for every set (:func:`mlp_width`).  It writes to ``examples/ace/results/``:

* ``fit_runs.json``   every run (rewritten after each one; ``--resume`` skips finished runs),
* ``comparison.md``   the table (mean +- std over seeds) with machine information,
* ``comparison.png``  test errors against training-set size,
* ``sets/*.json``     the descriptor sets used (einsum strings of every factor).

Everything but the data split is seeded by the run's seed: MLP initialisation, batch order
and which training configurations are drawn from the pool; the validation and test sets are
fixed.  All descriptor sets see exactly the same training configurations, batches and
stopping rule.

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
from .flexible_sets import flexible_set
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
    steps: int  # most optimiser steps per fit (early stopping usually ends it first)
    timing_configs: int  # configurations used to time the descriptors
    title: str = ""
    n_val: int = 500  # fixed validation configurations (disjoint from the test set and from training)
    eval_every: int = 100  # optimiser steps between validation checks
    patience: int = 6  # validation checks without improvement before stopping
    lr_patience: int = 2  # validation checks without improvement before the learning rate is halved


SYSTEMS = {
    "methane": SystemConfig("methane", 3.5, [1, 6], 50_000, 2_000, [4000], 32, 3000, 400,
                            "CH4, GFN2-xTB (tblite)", n_val=500, eval_every=100, patience=5),
    "cu": SystemConfig("cu", 5.0, [29], 2_000, 200, [160], 4, 1500, 20, "Cu fcc 32-atom cells, EMT",
                       n_val=100, eval_every=50, patience=5),
}
DEFAULT_SETTINGS = [(3, 2, 3), (4, 3, 3)]  # (3, 2, 4): same independent and flexible sets as (3, 2, 3)
DEFAULT_SEEDS = [0, 1, 2]
KINDS = ("linear", "independent", "flexible")


def mlp_width(n_features: int, per_feature: int = 2, lo: int = 32, hi: int = 128) -> int:
    """The one width rule for every set: ``per_feature`` hidden units per descriptor, within ``[lo, hi]``.

    A set with more inputs gets a wider first layer, so no set is starved of (or buried in)
    parameters by a width chosen for another; the bounds keep tiny sets trainable and big
    ones affordable.
    """
    return int(min(hi, max(lo, per_feature * n_features)))


@dataclass
class FitConfig:
    width: int | None = None  # None: mlp_width(K) per set
    depth: int = 2
    lr: float = 3e-3
    lr_final: float = 3e-5  # training stops once the halved learning rate falls below this
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
    val = np.arange(n - cfg.n_test - cfg.n_val, n - cfg.n_test)
    pool = np.arange(n - cfg.n_test - cfg.n_val)
    return {"structs": structs, "energy": data["energy"], "forces": data["forces"].reshape(-1, 3),
            "test": test, "val": val, "pool": pool}


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


class _Precomputed:
    """A fixed set of configurations with ``A`` and ``J`` precomputed: cheap repeated loss evaluations."""

    def __init__(self, desc: ACEDescriptor, d: dict, configs: np.ndarray, dtype):
        self.s, self.E, self.F = _targets(d, configs, dtype)
        self.A, self.J = desc.base_and_jacobian(self.s, dtype)
        self.nat = torch.as_tensor(np.diff(self.s.atom_offsets), dtype=dtype)

    def loss(self, model, backend, var_e: float, var_f: float, force_weight: float) -> float:
        Ep, Fp = energy_and_forces_from_base(model, backend, self.A, self.J, self.s)
        e = ((Ep.detach() - self.E) / self.nat).pow(2).mean() / var_e
        f = (Fp.detach() - self.F).pow(2).mean() / var_f
        return float(e + force_weight * f)


def train_one(desc: ACEDescriptor, d: dict, cfg: SystemConfig, size: int, seed: int, fc: FitConfig,
              val: "_Precomputed | None" = None) -> dict:
    """One fit to convergence: Adam; the learning rate is halved after ``lr_patience`` validation
    checks without improvement; stop after ``patience`` checks without improvement, when the
    learning rate falls below ``lr_final``, or at ``cfg.steps``; the best validation weights are kept."""
    dtype = fc.dtype
    rng = np.random.default_rng([seed, size, 12345])
    train = np.sort(rng.choice(d["pool"], size=size, replace=False))
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    c0 = time.process_time()
    if val is None:
        val = _Precomputed(desc, d, d["val"], dtype)
    s_train, E_train, F_train = _targets(d, train, dtype)
    A_train, J_train = desc.base_and_jacobian(s_train, dtype)
    nat_train = torch.as_tensor(np.diff(s_train.atom_offsets), dtype=dtype)
    mean, std = _descriptor_stats(desc, A_train, s_train, cfg.species, dtype)
    e_atom = E_train / nat_train
    f_rms = float(F_train.pow(2).mean().sqrt())
    width = fc.width or mlp_width(desc.n_features)
    model = ElementMLP(cfg.species, desc.n_features, width, fc.depth, mean, std, float(e_atom.mean()), f_rms)
    var_e = float(e_atom.var()) if size > 1 else 1.0
    var_f = f_rms ** 2
    opt = torch.optim.Adam(model.parameters(), lr=fc.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=cfg.lr_patience - 1, threshold=1e-3)
    batch = min(cfg.batch, size)
    order = np.array([], dtype=np.int64)
    losses = []
    best = (float("inf"), 0, {k: v.clone() for k, v in model.state_dict().items()})
    since_best, stop = 0, "max steps"
    for step in range(1, cfg.steps + 1):
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
        losses.append(loss.detach().item())
        if step % cfg.eval_every:
            continue
        v = val.loss(model, desc.backend, var_e, var_f, fc.force_weight)
        if v < best[0] * (1 - 1e-3):
            best, since_best = (v, step, {k: t.clone() for k, t in model.state_dict().items()}), 0
        else:
            since_best += 1
        sched.step(v)
        if since_best >= cfg.patience:
            stop = "patience"
            break
        if opt.param_groups[0]["lr"] < fc.lr_final:
            stop = "learning rate"
            break
    model.load_state_dict(best[2])
    train_time = time.perf_counter() - t0
    train_cpu = time.process_time() - c0
    test = evaluate(model, desc, d, d["test"], dtype)
    return {"train_time_s": train_time, "train_cpu_s": train_cpu, "final_loss": float(np.mean(losses[-20:])),
            "width": width, "steps_run": step, "best_step": best[1], "best_val_loss": best[0], "stop": stop, **test}


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


def merge_runs(parts: list[dict]) -> dict:
    """One payload from runs done in parallel processes: runs and systems joined, wall time the longest."""
    out = dict(parts[0])
    out["runs"] = [r for p in parts for r in p["runs"]]
    out["systems"] = {k: v for p in parts for k, v in p.get("systems", {}).items()}
    out["wall_s"] = max(p.get("wall_s") or 0 for p in parts)
    out["load_start"] = [p.get("load_start") for p in parts]
    out["load_end"] = [p.get("load_end") for p in parts]
    out["parallel_processes"] = len(parts)
    return out


def _versions() -> dict:
    out = {}
    try:
        out["optinv_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                              cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    for mod in ("ase", "tblite"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional, informational only
            pass
    return out


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
    lines = ["# ACE descriptors: full linear basis vs independent subset vs flexible subset", ""]
    info = payload.get("machine", {})
    lines.append(f"Machine: {info.get('cpu', '?')}, {info.get('cores', '?')} cores, torch {info.get('torch', '?')} "
                 f"({info.get('torch_threads', '?')} threads), Python {info.get('python', '?')}; "
                 f"load average at start {payload.get('load_start', '?')}, at end {payload.get('load_end', '?')}.")
    if payload.get("wall_s") is not None:
        par = payload.get("parallel_processes", 1)
        lines.append(f"Total wall time {payload['wall_s'] / 60:.1f} min"
                     + (f" ({par} processes in parallel, one per system and setting)" if par > 1 else "")
                     + f"; backend `{payload.get('backend')}`; "
                     f"MLP {payload.get('mlp')}.")
    if payload.get("versions"):
        lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in payload["versions"].items()) + ".")
    lines.append("")
    lines.append("Errors on the fixed held-out test set, mean ± sample std over seeds "
                 f"({', '.join(str(s) for s in payload.get('seeds', []))}); energy RMSE per atom, force RMSE per "
                 "component. K = descriptors per atom. Train CPU s: process CPU time of one fit (training + "
                 "validation checks), a fairer measure than wall time on a shared machine. Descriptor time (wall): "
                 "per atom, values only / values + gradient "
                 f"w.r.t. positions, float32, `{payload.get('backend')}` invariant backend, on this machine.")
    lines.append("")
    for system in dict.fromkeys(r["system"] for r in runs):
        cfg = payload.get("systems", {}).get(system, {})
        lines.append(f"## {cfg.get('title', system)}")
        lines.append("")
        if "eval_every" in cfg:
            lines.append(f"Cutoff {cfg.get('cutoff')} Å; batches of {cfg.get('batch')} configurations; validation "
                         f"every {cfg.get('eval_every')} steps on {cfg.get('n_val')} fixed configurations, early "
                         f"stopping after {cfg.get('patience')} checks without improvement (at most "
                         f"{cfg.get('steps')} steps); test set {cfg.get('n_test')} configurations.")
        else:
            lines.append(f"Cutoff {cfg.get('cutoff')} Å; {cfg.get('steps')} optimiser steps of {cfg.get('batch')} "
                         f"configurations per fit; test set {cfg.get('n_test')} configurations.")
        lines.append("")
        lines.append("| setting (n_rad, l_max, nu_max) | set | K | width | desc µs/atom (val / +grad) | train configs | "
                     "steps (best / run) | train CPU s | E RMSE meV/atom | F RMSE meV/Å | seeds |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for (sys_, setting, kind, size), rs in groups.items():
            if sys_ != system:
                continue
            r0 = rs[0]
            steps = (f"{_ms([r['best_step'] for r in rs], '{:.0f}')} / {_ms([r['steps_run'] for r in rs], '{:.0f}')}"
                     if "best_step" in r0 else "-")
            lines.append(
                f"| {setting} | {kind} | {r0['n_features']} | {r0.get('width', 64)} | {r0['desc_us_per_atom']:.1f} / "
                f"{r0['desc_grad_us_per_atom']:.1f} | {size} | {steps} | {_ms([r.get('train_cpu_s', r['train_time_s']) for r in rs], '{:.0f}')} | "
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
    """Test errors at each system's largest training size: one group per setting, one marker per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = payload["runs"]
    systems = list(dict.fromkeys(r["system"] for r in runs))
    same_as = _identical_sets(path.parent)
    fig, axes = plt.subplots(2, len(systems), figsize=(5.2 * len(systems), 7.0), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"linear": ("s", colours[0], -0.22), "independent": ("o", colours[1], 0.0), "flexible": ("^", colours[2], 0.22)}
    for c, system in enumerate(systems):
        size = max(r["size"] for r in runs if r["system"] == system)
        rs_sys = [r for r in runs if r["system"] == system and r["size"] == size]
        settings = list(dict.fromkeys(tuple(r["setting"]) for r in rs_sys))
        for row, (metric, label) in enumerate([("energy_rmse_meV_per_atom", "energy RMSE (meV/atom)"),
                                               ("force_rmse_meV_per_A", "force RMSE (meV/Å)")]):
            ax = axes[row][c]
            for kind, (marker, colour, dx) in styles.items():
                xs, ms, es, first = [], [], [], True
                for si, setting in enumerate(settings):
                    vals = [r[metric] for r in rs_sys if tuple(r["setting"]) == setting and r["kind"] == kind]
                    if not vals:
                        continue
                    xs.append(si + dx)
                    ms.append(np.mean(vals))
                    es.append(np.std(vals, ddof=1) if len(vals) > 1 else 0.0)
                    K = next(r["n_features"] for r in rs_sys if tuple(r["setting"]) == setting and r["kind"] == kind)
                    note = " (same set as " + str(same_as[(kind, setting)]) + ")" if (kind, setting) in same_as else ""
                    ax.annotate(f"K={K}{note}", (si + dx, np.mean(vals)), textcoords="offset points", xytext=(4, 4),
                                fontsize=6, color=colour)
                if xs:
                    ax.errorbar(xs, ms, yerr=es, ls="none", marker=marker, color=colour, capsize=3, label=kind)
            ax.set_xticks(range(len(settings)))
            ax.set_xticklabels([str(st) for st in settings])
            ax.set_xlim(-0.6, len(settings) - 0.4)
            ax.set_xlabel("(n_rad, l_max, nu_max)")
            ax.set_ylabel(label)
            ax.grid(True, axis="y", alpha=0.3)
            if row == 0:
                title = payload.get("systems", {}).get(system, {}).get("title", system)
                ax.set_title(f"{title}, {size} training configurations", fontsize=9)
            if row == 0 and c == 0:
                ax.legend(fontsize=7)
    fig.suptitle("ACE: full linear basis, independent subset, flexible subset; early stopping; "
                 "mean ± std over seeds", fontsize=9)
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


def build_sets(settings, out_dir: Path, rebuild_flexible: bool = False) -> dict[tuple, dict[str, DescriptorSet]]:
    """The three sets per setting, written to ``out_dir/sets``.

    The flexible set is read back from ``sets/flexible_*.json`` when present (its search is the
    slow one; ``rebuild_flexible`` recomputes it).  It is deterministic (time limit 0), so
    rebuilding gives the same list.
    """
    sets = {}
    (out_dir / "sets").mkdir(parents=True, exist_ok=True)
    for st in settings:
        flex_path = out_dir / "sets" / f"flexible_{st[0]}_{st[1]}_{st[2]}.json"
        if flex_path.exists() and not rebuild_flexible:
            flex = DescriptorSet.from_dict(json.loads(flex_path.read_text()))
        else:
            flex = flexible_set(*st)
        sets[st] = {"linear": linear_ace_set(*st), "independent": independent_set(*st), "flexible": flex}
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
    ap.add_argument("--steps", type=int, default=None, help="most optimiser steps per fit (default per system)")
    ap.add_argument("--seeds-below-largest", type=int, default=None,
                    help="how many of the seeds to run at sizes below the largest (default: all)")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS), help="descriptor sets to fit")
    ap.add_argument("--rebuild-flexible", action="store_true",
                    help="recompute the flexible sets instead of reading results/sets/flexible_*.json")
    ap.add_argument("--backend", default="codegen",
                    help="invariant backend: codegen (default: optinv-generated C kernels), poly, einsum")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: small ops; on a shared machine more threads can be much slower)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--resume", action="store_true", help="keep finished runs from fit_runs.json and skip them")
    ap.add_argument("--report-only", action="store_true", help="rebuild comparison.md/png from fit_runs.json")
    ap.add_argument("--merge", nargs="+", type=Path, default=None, metavar="DIR",
                    help="merge the fit_runs.json of runs done in parallel (e.g. one process per system) into --out")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (1 seed, small sizes, few steps)")
    args = ap.parse_args(argv)
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    runs_path = out_dir / "fit_runs.json"
    if args.merge:
        payload = merge_runs([json.loads((m / "fit_runs.json").read_text()) for m in args.merge])
        for m in args.merge:  # the sets are the same lists in every part
            for f in sorted((m / "sets").glob("*.json")):
                (out_dir / "sets").mkdir(parents=True, exist_ok=True)
                (out_dir / "sets" / f.name).write_text(f.read_text())
        runs_path.write_text(json.dumps(payload, indent=1) + "\n")
    if args.report_only or args.merge:
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
            cfg.sizes, cfg.steps = cfg.sizes[:1], min(cfg.steps, 60)
            cfg.eval_every = min(cfg.eval_every, 20)
            cfg.n_test = min(cfg.n_test, 100)
            cfg.n_val = min(cfg.n_val, 50)
            cfg.timing_configs = min(cfg.timing_configs, 20)
    seeds = args.seeds[:1] if args.quick else args.seeds
    fc = FitConfig(backend=args.backend)
    t_start = time.perf_counter()
    payload = {"machine": machine_info(), "load_start": [round(x, 2) for x in os.getloadavg()],
               "backend": fc.backend, "seeds": seeds,
               "mlp": f"per-element {fc.depth} hidden layers SiLU, width "
                      + (str(fc.width) if fc.width else "min(128, max(32, 2K)) for K descriptors")
                      + f", Adam lr {fc.lr} halved on validation plateaus, early stopping (best validation "
                        f"weights), stop below lr {fc.lr_final}; force weight {fc.force_weight}, "
                        f"{str(fc.dtype).replace('torch.', '')}",
               "versions": _versions(),
               "systems": {k: v.__dict__ for k, v in systems.items()}, "runs": []}
    done = {}
    if args.resume and runs_path.exists():
        for r in json.loads(runs_path.read_text())["runs"]:
            done[(r["system"], tuple(r["setting"]), r["kind"], r["size"], r["seed"])] = r
    sets = build_sets(args.settings, out_dir, args.rebuild_flexible)
    kinds = [k for k in KINDS if k in args.kinds]
    payload["flexible_sets"] = {f"{st}": {k: v for k, v in sets[st]["flexible"].info.items() if k != "strata"}
                                for st in args.settings}

    def seeds_for(cfg, n):
        return seeds if n == max(cfg.sizes) or args.seeds_below_largest is None else seeds[: args.seeds_below_largest]

    jobs = [(sy, st, kind, n, seed) for sy in systems for st in args.settings for n in systems[sy].sizes
            for seed in seeds_for(systems[sy], n) for kind in kinds]
    bar = tqdm(total=len(jobs), desc="fits", unit="fit")
    for sy, cfg in systems.items():
        d = prepare_system(cfg, args.data_dir)
        for st in args.settings:
            descs, timing, vals = {}, {}, {}
            for kind in kinds:
                descs[kind] = ACEDescriptor(sets[st][kind], cfg.cutoff, cfg.species, backend=fc.backend)
                timing[kind] = time_descriptors(descs[kind], d, cfg.timing_configs, fc.dtype)
                vals[kind] = _Precomputed(descs[kind], d, d["val"], fc.dtype)
            for n in sorted(cfg.sizes, reverse=True):  # the largest size (all seeds) first
                for seed in seeds_for(cfg, n):
                    for kind in kinds:
                        key = (sy, st, kind, n, seed)
                        bar.set_postfix_str(f"{sy} {st} {kind} n={n} seed={seed}")
                        if key in done:
                            payload["runs"].append(done[key])
                        else:
                            res = train_one(descs[kind], d, cfg, n, seed, fc, vals[kind])
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
