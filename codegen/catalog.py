"""The modules committed under ``generated/`` and the requests that produce them.

``optinv generate`` rewrites them all; the test suite regenerates each into a
temporary directory and compares bytes, so templates and committed code never
drift apart.
"""

from __future__ import annotations

from pathlib import Path

import optinv.generated

#: HIP-HOP-NN's own 13 invariants for l_max=3, n_max=4 (hippynn's calc_invariants order and tensor names
#: zero/one/two/three): independent and complete (rank = bound = 13).  The one copy in the project.
HIPPYNN_INVARIANTS = (
    "->,zero",
    "i,i->,one,one",
    "ij,ij->,two,two",
    "ij,ik,jk->,two,two,two",
    "ijk,ijk->,three,three",
    "ijk,ijl,abk,abl->,three,three,three,three",
    "i,ij,j->,one,two,one",
    "i,ij,jk,k->,one,two,two,one",
    "i,j,k,ijk->,one,one,one,three",
    "i,ijk,jkl,l->,one,three,three,one",
    "ij,jkl,ikl->,two,three,three",
    "ij,jk,ilm,klm->,two,two,three,three",
    "ij,ijk,kab,ab->,two,three,three,two",
)


def committed_modules() -> dict[str, dict]:
    """Name -> request of every module in ``generated/`` (they import optinv's runtime, not a copy)."""
    modules = {}
    for l_max in range(1, 5):
        for n_max in range(2, 5):
            modules[f"hop_l{l_max}_n{n_max}"] = {"group": "O3", "l_max": l_max, "n_max": n_max,
                                                  "bundle_runtime": False}
    modules["hippynn_default"] = {"group": "O3", "l_max": 3, "invariants": list(HIPPYNN_INVARIANTS),
                                  "bundle_runtime": False}
    for l_max in (3, 4):  # stratum-aware bases: complete generically and at the maximum on every stratum
        modules[f"flex_l{l_max}_n4"] = {"group": "O3", "l_max": l_max, "n_max": 4, "flexible": True,
                                        "bundle_runtime": False}
    return modules


def generated_dir() -> Path:
    """The folder of the committed modules (``optinv.generated``)."""
    return Path(optinv.generated.__file__).resolve().parent
