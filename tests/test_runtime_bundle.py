"""Runtime code is real modules: committed modules import them, compiled packages carry verbatim copies."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import numpy as np

from optinv.algebra.signature import Signature
from optinv.codegen import compile_module
from optinv.codegen.runtime import BUNDLED_FILES, native, runtime_source, torch_adapter


def test_committed_modules_import_the_runtime_modules():
    module = importlib.import_module("optinv.generated.hop_l2_n3")
    assert module._runtime is native
    assert not (module.PACKAGE_DIR / "_runtime.py").exists()
    assert module.METADATA["request"]["bundle_runtime"] is False


def test_compiled_package_carries_verbatim_copies(tmp_path):
    path = compile_module(["i,i->,v,v", "ij,ij->,q,q"], Signature.from_l_max(2), "bundled", tmp_path)
    for module, fname in BUNDLED_FILES.items():
        assert (path / fname).read_text() == runtime_source(module)
    assert runtime_source("native") == open(native.__file__).read()
    assert runtime_source("torch_adapter") == open(torch_adapter.__file__).read()


def test_compiled_package_runs_with_optinv_unimportable(tmp_path):
    """The vendored package needs NumPy, a C compiler and (for autograd) torch: never optinv."""
    compile_module(["i,i->,v,v", "ij,ij->,q,q"], Signature.from_l_max(2), "vendored", tmp_path)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["optinv"] = None  # any `import optinv...` now raises ImportError
        sys.path.insert(0, {str(tmp_path)!r})
        import numpy as np, torch, vendored
        x = np.arange(18.0).reshape(2, 9)
        print(vendored.forward(x).tolist())
        t = torch.tensor(x, requires_grad=True)
        (g,) = torch.autograd.grad(vendored.torch_invariants(t).sum(), t)
        print(g[0, 1:4].tolist())
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    values, grad = (eval(line) for line in done.stdout.splitlines())
    x = np.arange(18.0).reshape(2, 9)
    assert values[0][0] == float(x[0, 1:4] @ x[0, 1:4])  # v.v
    assert grad == (2 * x[0, 1:4]).tolist()  # d(v.v)/dv = 2v (q.q does not depend on v)
