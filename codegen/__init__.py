"""Code generation: Request -> Plan -> target registry -> package on disk.

>>> from optinv.codegen import compile_module, load_module
"""

from optinv.codegen.package import compile_module, compile_request, hop_module, load_module
from optinv.codegen.plan import Plan, make_plan, plan_kernels
from optinv.codegen.render import render_module
from optinv.codegen.request import Request

__all__ = ["Plan", "Request", "compile_module", "compile_request", "hop_module", "load_module", "make_plan",
           "plan_kernels", "render_module"]
