"""Load a model trained by ``examples.hiphop.train.run`` back from its run folder.

A run folder is named ``<variant>_n<n_train>_s<seed>`` (``train.run`` and the
study name them so) and holds the best Lightning checkpoint under
``checkpoints/``.  The graph is rebuilt by ``train.build_graph``, the very
function ``train.build_experiment`` trains, and the checkpoint's ``model.*``
weights are loaded strictly, so a missing or extra weight is an error.

    from examples.hiphop.trained import load_trained
    model = load_trained("examples/hiphop/runs/curves/hiphop-l3n4-generic_n4000_s0")
    energy, forces = model.predict(numbers, positions)     # float64 by default
    calc = model.calculator()                              # hippynn's ASE calculator, eV and Angstrom
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

METHANE_SPECIES = (0, 1, 6)  # what build_experiment derives from the methane set
RUN_NAME = re.compile(r"(?P<variant>.+)_n(?P<n_train>\d+)_s(?P<seed>\d+)")


def environment() -> dict:
    """``train.environment()`` (machine, torch, hippynn, Lightning) plus optinv, ASE and tblite versions."""
    from importlib.metadata import PackageNotFoundError, version

    from examples.hiphop.train import environment as train_environment

    env = train_environment()
    for package in ("optinv", "ase", "tblite", "numpy", "scipy"):
        try:
            env[package] = version(package)
        except PackageNotFoundError:
            env[package] = None
    return env


def parse_run_name(run_dir) -> tuple[str, int, int]:
    """``(variant, n_train, seed)`` from a run folder's name."""
    name = Path(run_dir).name
    m = RUN_NAME.fullmatch(name)
    if not m:
        raise ValueError(f"run folder: expected a name <variant>_n<n_train>_s<seed>, got {name!r}")
    return m["variant"], int(m["n_train"]), int(m["seed"])


def checkpoint_of(run_dir) -> Path:
    """The run's checkpoint (``train.run`` keeps only the best one)."""
    found = sorted(Path(run_dir, "checkpoints").glob("*.ckpt"))
    if len(found) != 1:
        raise FileNotFoundError(f"{run_dir}: expected one checkpoints/*.ckpt, found {len(found)}")
    return found[0]


def test_metrics(run_dir) -> dict | None:
    """The test metrics ``train.run`` logged after training, or ``None`` while the run is still training.

    The checkpoint is rewritten whenever validation improves, so its presence alone does not mean
    the run has finished; the test row in Lightning's ``metrics.csv`` is written last.
    """
    import csv

    for log in sorted(Path(run_dir).glob("lightning_logs/version_*/metrics.csv")):
        with open(log, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("test_E-RMSE"):
                    return {k: float(v) for k, v in row.items() if k.startswith("test_") and v}
    return None


@dataclass
class TrainedModel:
    variant: str
    n_train: int
    seed: int
    checkpoint: Path
    nodes: dict  # graph nodes: species, positions, net, henergy, force
    model: torch.nn.Module  # the training GraphModule (inputs Z, R), weights loaded
    dtype: torch.dtype

    def predict(self, numbers, positions, atom_energies: bool = False):
        """Energies (eV) and forces (eV/A) of a batch of molecules of the same atoms.

        ``numbers``: ``(n_atoms,)``; ``positions``: ``(n_atoms, 3)`` or ``(batch, n_atoms, 3)``.
        With ``atom_energies``, also each atom's energy ``(batch, n_atoms)`` (their sum is the energy).
        """
        from hippynn.graphs import GraphModule

        pos = np.asarray(positions, dtype=np.float64)
        single = pos.ndim == 2
        pos = pos[None] if single else pos
        z = np.broadcast_to(np.asarray(numbers, dtype=np.int64), pos.shape[:2])
        henergy, force = self.nodes["henergy"], self.nodes["force"]
        key = "atom" if atom_energies else "plain"
        if not hasattr(self, "_graphs"):
            self._graphs = {}
        if key not in self._graphs:
            outputs = [henergy.mol_energy, force] + ([henergy.atom_energies] if atom_energies else [])
            graph = GraphModule([self.nodes["species"], self.nodes["positions"]], outputs)
            self._graphs[key] = graph.eval()
        out = self._graphs[key](torch.as_tensor(np.ascontiguousarray(z)),
                                torch.as_tensor(pos, dtype=self.dtype).requires_grad_(True))
        energy = out[0].detach().double().numpy()[:, 0]
        forces = out[1].detach().double().numpy()
        result = [energy[0] if single else energy, forces[0] if single else forces]
        if atom_energies:
            atoms = out[2].detach().double().numpy().reshape(pos.shape[:2])
            result.append(atoms[0] if single else atoms)
        return tuple(result)

    def calculator(self):
        """hippynn's ASE calculator for this model, in eV and Angstrom, in the model's dtype."""
        from hippynn.interfaces.ase_interface import HippynnCalculator

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calc = HippynnCalculator(self.nodes["henergy"], en_unit=1.0, dist_unit=1.0)
        return calc.to(self.dtype)


def load_trained(run_dir, species_set=METHANE_SPECIES, dtype=torch.float64, checkpoint=None) -> TrainedModel:
    """Rebuild the run's graph, load its best checkpoint, return it in ``dtype`` in eval mode."""
    from examples.hiphop.train import build_graph

    variant, n_train, seed = parse_run_name(run_dir)
    path = Path(checkpoint) if checkpoint else checkpoint_of(run_dir)
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    weights = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    if not weights:
        raise ValueError(f"{path}: no 'model.*' weights in the checkpoint's state_dict")
    training_modules, _, nodes = build_graph(variant, species_set, seed)
    model = training_modules.model
    model.load_state_dict(weights, strict=True)
    model.to(dtype).eval()
    return TrainedModel(variant, n_train, seed, path, nodes, model, dtype)
