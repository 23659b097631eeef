"""Code generation: plan a Program from a Basis, emit sources from templates, build modules.

>>> from optinv.codegen import compile_module, load_module  # doctest: +SKIP
"""

from optinv.codegen.build import compile_module, compile_request, hop_module, load_module, render_request
from optinv.codegen.emit import plan_kernels, render_module

__all__ = ["compile_module", "compile_request", "hop_module", "load_module", "plan_kernels", "render_module", "render_request"]
