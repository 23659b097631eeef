"""examples/hiphop: data generation is deterministic per configuration and resumable; splits are sound."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tblite")
pytest.importorskip("ase")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.hiphop import data  # noqa: E402


def test_chunks_do_not_depend_on_chunk_boundaries():
    a = data.compute_chunk("ethanol", 3, 0, 4)
    b = data.compute_chunk("ethanol", 3, 2, 4)
    np.testing.assert_array_equal(a["positions"][2:], b["positions"])
    np.testing.assert_array_equal(a["energy"][2:], b["energy"])
    assert sorted(a["numbers"]) == [1] * 6 + [6, 6, 8]
    # forces are minus the gradient of the energy (GFN2-xTB, central differences)
    from examples.ace.data import xtb_energy_forces

    z, pos = data.configuration("methane", 0, 7)
    _, f = xtb_energy_forces(z, pos)
    h = 1e-4
    dp = np.zeros_like(pos)
    dp[1, 2] = h
    fd = -(xtb_energy_forces(z, pos + dp)[0] - xtb_energy_forces(z, pos - dp)[0]) / (2 * h)
    assert abs(fd - f[1, 2]) < 1e-4 * max(1.0, abs(f[1, 2]))


def test_generate_on_a_local_dask_cluster_resumes_from_written_chunks(tmp_path):
    pytest.importorskip("distributed")
    path = data.generate("methane", 12, seed=5, workers=1, chunk=4, data_dir=tmp_path, progress=False)
    with np.load(path) as f:
        energy, positions = f["energy"], f["positions"]
        info = json.loads(str(f["info"]))
    assert energy.shape == (12,) and positions.shape == (12, 5, 3) and info["last_run"]["chunks"] == 3
    # the same configurations, computed one by one without Dask
    ref = data.compute_chunk("methane", 5, 8, 12)
    np.testing.assert_array_equal(positions[8:], ref["positions"])
    np.testing.assert_array_equal(energy[8:], ref["energy"])
    # resume: drop the merged file and one chunk; only that chunk is recomputed
    path.unlink()
    chunks = sorted(path.with_suffix("").glob("chunk_*.npz"))
    chunks[1].unlink()
    again = data.generate("methane", 12, seed=5, workers=1, chunk=4, data_dir=tmp_path, progress=False)
    with np.load(again) as f:
        np.testing.assert_array_equal(f["energy"], energy)
        assert json.loads(str(f["info"]))["last_run"]["chunks"] == 1


def test_unknown_system_is_refused(tmp_path):
    with pytest.raises(ValueError, match="system: expected one of"):
        data.generate("water", 10, data_dir=tmp_path)


def test_training_splits_are_disjoint_and_the_test_set_is_fixed():
    pytest.importorskip("torch")
    from examples.hiphop.train import parse_variant, splits

    tr1, va1, te1 = splits(1000, 200, 50, 100, seed=1)
    tr2, va2, te2 = splits(1000, 400, 50, 100, seed=2)
    for tr, va, te in ((tr1, va1, te1), (tr2, va2, te2)):
        assert len(set(tr) | set(va) | set(te)) == len(tr) + len(va) + len(te)
    np.testing.assert_array_equal(te1, te2)
    np.testing.assert_array_equal(va1, va2)
    with pytest.raises(ValueError, match="only 850 configurations left"):
        splits(1000, 900, 50, 100, seed=0)
    assert parse_variant("hiphop-l5n3-generic") == {"family": "hiphop", "l_max": 5, "n_max": 3, "impl": "generic"}
    with pytest.raises(ValueError, match="variant: expected"):
        parse_variant("hiphop-3-4")
