"""Runtime code of generated modules: real, linted modules, imported or copied.

Committed modules (``optinv.generated.*``) import these modules; a package
written by ``optinv compile`` gets verbatim copies (:data:`BUNDLED_FILES`), so
it runs without optinv installed.  Neither module imports anything from optinv.
"""

from pathlib import Path

#: Runtime module -> the file name of its copy inside a self-contained package.
BUNDLED_FILES = {"native": "_runtime.py", "torch_adapter": "_torch.py", "torch_library": "_torch_library.py",
                 "jax_callback": "_jax_callback.py", "torch_cpp": "_torch_cpp.py",
                 "jax_ffi": "_jax_ffi.py"}


def runtime_source(module: str) -> str:
    """The source text of runtime module ``module`` (as copied into self-contained packages)."""
    return (Path(__file__).resolve().parent / f"{module}.py").read_text()
