"""optinv: a symbolic compiler for minimal, complete rotation-invariant bases.

The pipeline, one object handed to the next::

    Signature --candidates--> graphs --select--> Basis --Request/plan--> Program
    --target registry--> generated package --adapters--> NumPy / PyTorch / CuPy

The engine lives in :mod:`optinv.algebra`, code generation in
:mod:`optinv.codegen` (targets in :mod:`optinv.codegen.targets`), checking a
generated module in :mod:`optinv.verify`.  The functions below are the API.

>>> import optinv
>>> sig = optinv.Signature.from_l_max(1)
>>> basis = optinv.select_basis(sig, n_max=2)
>>> basis.einsums
['->,s', 'i,i->,v,v']
"""

from optinv.algebra.errors import OptinvError
from optinv.algebra.flexible import select_flexible_basis
from optinv.algebra.select import check_invariants, select_basis
from optinv.algebra.strata import catalogue as strata_catalogue
from optinv.algebra.signature import Signature
from optinv.codegen.package import compile_module, load_module
from optinv.verify.run import verify_module
from optinv.version import __version__

__all__ = ["OptinvError", "Signature", "__version__", "check_invariants", "compile_module", "load_module",
           "select_basis", "select_flexible_basis", "strata_catalogue", "verify_module"]
