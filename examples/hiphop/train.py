"""Train HIP-NN / HIP-NN-TS / HIP-HOP-NN variants with hippynn's own Lightning trainer.

Energy + force loss, early stopping on the validation loss (hippynn's
``PatienceController``), float32, any Lightning strategy (``--strategy ddp``
with ``--devices`` / ``--num-nodes`` for several GPUs or nodes).

    python -m examples.hiphop.train --quick           # the demo: HIP-NN and two (3,4) HIP-HOP-NN on 1,000 methane
    python -m examples.hiphop.train --variant hiphop-l4n4-generic --n-train 16000 --accelerator gpu --devices 4 --strategy ddp

Variants (``--variant``):

* ``hipnn``, ``hipnn-ts1``, ``hipnn-ts2``: hippynn's HIP-NN and HIP-NN-TS (l = 1, 2);
* ``hiphop-l{L}n{N}-hippynn``: hippynn's own HIP-HOP-NN code (L <= 3, N <= 4);
* ``hiphop-l{L}n{N}-generic``: optinv's minimal complete invariants and C kernels, any L, N;
* ``hiphop-l{L}n{N}-hippynnlist``: hippynn's invariant list computed by optinv's kernels
  (the same function as ``-hippynn``, to 1e-10 in float64: tests/test_hippynn_integration.py);
* ``hiphop-l{L}n{N}-flexible``: optinv's stratum-aware set (``optinv basis --flexible``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
RUNS_DIR = HERE / "runs"

NETWORK = dict(n_features=20, n_sensitivities=16, dist_soft_min=0.6, dist_soft_max=3.0, dist_hard_max=3.5,
               n_atom_layers=2, n_interaction_layers=1)
FORCE_WEIGHT = 1.0  # eV/A errors weigh like eV errors (methane: forces carry most of the signal)


def parse_variant(variant: str) -> dict:
    if variant in ("hipnn", "hipnn-ts1", "hipnn-ts2"):
        return {"family": variant}
    m = re.fullmatch(r"hiphop-l(\d)n(\d)-(hippynn|generic|hippynnlist|flexible)", variant)
    if not m:
        raise ValueError(f"variant: expected hipnn, hipnn-ts1, hipnn-ts2 or hiphop-l<L>n<N>-<hippynn|generic|"
                         f"hippynnlist|flexible>, got {variant!r}")
    return {"family": "hiphop", "l_max": int(m[1]), "n_max": int(m[2]), "impl": m[3]}


def network_node(variant: str, species, positions, species_set, network=NETWORK):
    """The hippynn graph node of a variant."""
    from hippynn.graphs import networks

    spec = parse_variant(variant)
    kwargs = dict(network, possible_species=species_set)
    if spec["family"] == "hipnn":
        return networks.Hipnn("net", (species, positions), module_kwargs=kwargs)
    if spec["family"] == "hipnn-ts1":
        return networks.HipnnVec("net", (species, positions), module_kwargs=kwargs)
    if spec["family"] == "hipnn-ts2":
        return networks.HipnnQuad("net", (species, positions), module_kwargs=kwargs)
    kwargs.update(l_max=spec["l_max"], n_max=spec["n_max"])
    if spec["impl"] == "hippynn":
        return networks.HipHopnn("net", (species, positions), module_kwargs=kwargs)
    from optinv.hippynn import HipHopnn

    basis = {"generic": "generic", "hippynnlist": "hippynn", "flexible": "flexible"}[spec["impl"]]
    return HipHopnn("net", (species, positions), module_kwargs=dict(kwargs, basis=basis))


def splits(n_total: int, n_train: int, n_valid: int, n_test: int, seed: int):
    """Fixed test and validation sets (seed 0) for every run; the training subset depends on ``seed``."""
    fixed = np.random.default_rng(0).permutation(n_total)
    test, valid, pool = fixed[:n_test], fixed[n_test:n_test + n_valid], fixed[n_test + n_valid:]
    if n_train > len(pool):
        raise ValueError(f"n_train={n_train}: only {len(pool)} configurations left after validation and test")
    train = np.random.default_rng([seed, 1]).choice(pool, size=n_train, replace=False)
    return train, valid, test


def species_set_of(numbers) -> list[int]:
    """hippynn's species list for a data set: 0 (padding), then the elements present."""
    return [0, *sorted(set(int(z) for z in np.asarray(numbers).ravel()))]


def build_graph(variant: str, species_set, seed: int):
    """The model and loss graphs of one run (no data needed): ``training_modules, db_info, nodes``.

    ``nodes`` holds the graph nodes a deployed model needs (``species``, ``positions``,
    ``net``, ``henergy``, ``force``); a checkpoint's ``model.*`` state dict loads into
    ``training_modules.model`` (examples/hiphop/trained.py).
    """
    from hippynn.experiment import assemble_for_training
    from hippynn.graphs import inputs, loss, physics, targets

    torch.manual_seed(seed)
    species = inputs.SpeciesNode(db_name="Z")
    positions = inputs.PositionsNode(db_name="R")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = network_node(variant, species, positions, list(species_set))
    henergy = targets.HEnergyNode("HEnergy", net, db_name="T")
    force = physics.GradientNode("F", (henergy, positions), sign=-1, db_name="F")

    rmse_e = loss.MSELoss.of_node(henergy) ** 0.5
    rmse_f = loss.MSELoss.of_node(force) ** 0.5
    mae_e, mae_f = loss.MAELoss.of_node(henergy), loss.MAELoss.of_node(force)
    train_loss = rmse_e + mae_e + FORCE_WEIGHT * (rmse_f + mae_f) + 1e-6 * loss.l2reg(net)
    validation = {"E-RMSE": rmse_e, "E-MAE": mae_e, "F-RMSE": rmse_f, "F-MAE": mae_f, "Loss": train_loss}
    training_modules, db_info = assemble_for_training(train_loss, validation)
    nodes = {"species": species, "positions": positions, "net": net, "henergy": henergy, "force": force}
    return training_modules, db_info, nodes


def build_experiment(variant: str, data: dict, n_train: int, n_valid: int, n_test: int, seed: int,
                     batch_size: int = 64, max_epochs: int = 200, patience: int = 20, lr: float = 1e-3):
    """Graph, loss, database and controller for one run (hippynn's usual recipe)."""
    from hippynn.databases import Database
    from hippynn.experiment.controllers import PatienceController, RaiseBatchSizeOnPlateau
    from hippynn.pretraining import hierarchical_energy_initialization

    training_modules, db_info, nodes = build_graph(variant, species_set_of(data["numbers"]), seed)
    net, henergy = nodes["net"], nodes["henergy"]

    train, valid, test = splits(len(data["energy"]), n_train, n_valid, n_test, seed)
    order = np.concatenate([train, valid, test])
    n_atoms = data["positions"].shape[1]
    arrays = {
        "Z": np.broadcast_to(np.asarray(data["numbers"]), (len(order), n_atoms)).astype(np.int64),
        "R": data["positions"][order].astype(np.float32),
        "T": data["energy"][order].astype(np.float32)[:, None],
        "F": data["forces"][order].astype(np.float32),
    }
    database = Database(arrays, seed=seed, pin_memory=False, allow_unfound=True, **db_info)
    database.make_explicit_split("test", torch.arange(n_train + n_valid, len(order)))
    database.make_explicit_split("valid", torch.arange(n_train, n_train + n_valid))
    database.split_the_rest("train")
    hierarchical_energy_initialization(henergy, database, trainable_after=False)

    params = [p for p in training_modules.model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    scheduler = RaiseBatchSizeOnPlateau(optimizer, max_batch_size=4 * batch_size, patience=max(2, patience // 4),
                                        factor=0.5)
    controller = PatienceController(optimizer=optimizer, scheduler=scheduler, batch_size=batch_size,
                                    eval_batch_size=512, max_epochs=max_epochs, termination_patience=patience,
                                    stopping_key="Loss")
    return training_modules, database, controller, net


class StepTimer:
    """Lightning callback: wall and process CPU time of every training step."""

    def __new__(cls):
        import pytorch_lightning as pl

        class _Timer(pl.Callback):
            def __init__(self):
                self.wall, self.cpu = [], []

            def on_train_batch_start(self, *args):
                self._t = (time.perf_counter(), time.process_time())

            def on_train_batch_end(self, *args):
                self.wall.append(time.perf_counter() - self._t[0])
                self.cpu.append(time.process_time() - self._t[1])

        return _Timer()


def run(variant: str, data: dict, n_train: int, seed: int = 0, n_valid: int = 500, n_test: int = 2000,
        max_epochs: int = 200, patience: int = 20, batch_size: int = 64, accelerator: str = "cpu",
        devices="auto", strategy: str = "auto", num_nodes: int = 1, out_dir: Path | None = None,
        max_time: str | None = None, quiet: bool = True) -> dict:
    """Train one model through ``HippynnLightningModule`` and evaluate it on the test set."""
    import pytorch_lightning as pl
    from hippynn.experiment import SetupParams
    from hippynn.experiment.lightning_trainer import HippynnLightningModule

    torch.set_default_dtype(torch.float32)
    training_modules, database, controller, net = build_experiment(
        variant, data, n_train, n_valid, n_test, seed, batch_size=batch_size, max_epochs=max_epochs, patience=patience)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module, datamodule = HippynnLightningModule.from_experiment_setup(
            training_modules, database, SetupParams(controller=controller))
    out_dir = Path(out_dir or RUNS_DIR / f"{variant}_n{n_train}_s{seed}")
    # a stopped earlier attempt may have left its checkpoints: "best" must be this run's
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    timer = StepTimer()
    best = pl.callbacks.ModelCheckpoint(dirpath=out_dir / "checkpoints", monitor="valid_Loss", mode="min",
                                        save_top_k=1)
    trainer = pl.Trainer(accelerator=accelerator, devices=devices, strategy=strategy, num_nodes=num_nodes,
                         max_epochs=max_epochs, precision="32-true", logger=pl.loggers.CSVLogger(out_dir),
                         callbacks=[timer, best], enable_progress_bar=False, enable_model_summary=not quiet,
                         max_time=max_time, num_sanity_val_steps=0, inference_mode=False)  # forces need grad in test
    t0, c0 = time.perf_counter(), time.process_time()
    if quiet:
        module.print = lambda *a, **k: None
    trainer.fit(module, datamodule=datamodule)
    train_wall, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    tested = trainer.test(module, datamodule=datamodule, ckpt_path="best", verbose=not quiet)[0]
    n_atoms = data["positions"].shape[1]
    steps = np.array(timer.wall[5:] or timer.wall)
    return {
        "variant": variant, "n_train": n_train, "seed": seed, "n_valid": n_valid, "n_test": n_test,
        "n_atoms": n_atoms,
        "n_invariants": getattr(net.torch_module.interaction_layers[0], "n_invariants", None),
        "n_parameters": sum(p.numel() for p in net.torch_module.parameters() if p.requires_grad),
        "epochs": trainer.current_epoch, "best_epoch": int(controller.last_best),
        "test_energy_rmse_meV_per_atom": 1e3 * tested["test_E-RMSE"] / n_atoms,
        "test_energy_mae_meV_per_atom": 1e3 * tested["test_E-MAE"] / n_atoms,
        "test_force_rmse_meV_per_A": 1e3 * tested["test_F-RMSE"],
        "test_force_mae_meV_per_A": 1e3 * tested["test_F-MAE"],
        "train_wall_s": train_wall, "train_cpu_s": train_cpu,
        "step_wall_ms_median": 1e3 * float(np.median(steps)),
        "step_cpu_ms_median": 1e3 * float(np.median(timer.cpu[5:] or timer.cpu)),
        "batch_size": batch_size, "strategy": strategy, "accelerator": accelerator,
    }


def set_threads(n: int) -> None:
    """Threads for torch now and for the optinv C kernels (OpenMP reads this when they first load)."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)


def environment() -> dict:
    import hippynn
    import pytorch_lightning as pl

    return {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
            "cpu": _cpu_name(), "python": platform.python_version(), "torch": torch.__version__,
            "hippynn": hippynn.__version__, "pytorch_lightning": pl.__version__,
            "torch_threads": torch.get_num_threads(), "load_average_at_start": os.getloadavg()}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m examples.hiphop.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the demo: HIP-NN, hippynn's (3,4) and ours on 1,000 methane configurations")
    ap.add_argument("--variant", action="append", help="a variant (repeatable); see the module docstring")
    ap.add_argument("--system", default="methane", choices=["methane", "ethanol"])
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-epochs", type=int, default=200)
    ap.add_argument("--patience", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--accelerator", default="cpu")
    ap.add_argument("--devices", default="auto")
    ap.add_argument("--strategy", default="auto", help="Lightning strategy: auto, ddp, ddp_spawn, ...")
    ap.add_argument("--num-nodes", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads for torch and the optinv kernels (default 1: on a shared machine OpenMP "
                         "threads that wait for busy cores make a step 30x slower)")
    ap.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    args = ap.parse_args(argv)
    set_threads(args.threads)

    from examples.hiphop.data import load

    t0 = time.perf_counter()
    if args.quick:
        variants = ["hipnn", "hiphop-l3n4-hippynn", "hiphop-l3n4-generic"]
        n_train, max_epochs, patience, n_set = 1000, 60, 10, 200_000
    else:
        variants, n_train, max_epochs, patience, n_set = args.variant or ["hiphop-l3n4-generic"], args.n_train, \
            args.max_epochs, args.patience, None
    data = load(args.system, n_set)
    results = []
    for variant in variants:
        r = run(variant, data, n_train, seed=args.seed, max_epochs=max_epochs, patience=patience,
                batch_size=args.batch_size, accelerator=args.accelerator,
                devices=int(args.devices) if args.devices.isdigit() else args.devices,
                strategy=args.strategy, num_nodes=args.num_nodes)
        r["system"] = args.system
        results.append(r)
        print(f"{variant:24s} n_train={n_train}: energy RMSE {r['test_energy_rmse_meV_per_atom']:.1f} meV/atom, "
              f"force RMSE {r['test_force_rmse_meV_per_A']:.0f} meV/A, {r['epochs']} epochs in "
              f"{r['train_wall_s']:.0f} s, {r['step_wall_ms_median']:.1f} ms per step", flush=True)
    total = time.perf_counter() - t0
    print(f"total wall time {total:.0f} s")
    if args.out:
        args.out.write_text(json.dumps({"environment": environment(), "total_wall_s": total, "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
