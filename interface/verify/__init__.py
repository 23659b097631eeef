"""``optinv verify``: property-based verification of a generated module.

A user who compiled (or vendored) a module checks it, without trusting any of
its code, against the engine:

1. **invariance** -- outputs unchanged under rotations of the input tensors and,
   with pseudoscalars changing sign, under reflections; the group acts through
   the engine's :func:`~optinv.algebra.cartesian.transform_rows`;
2. **reference** -- agreement with the engine's NumPy evaluator rebuilt from the
   einsum strings in ``metadata.json``, in float64 and float32, on random,
   degenerate (zero rows, one tensor only) and badly scaled rows;
3. **derivatives** -- the VJP against finite differences of the module's own
   forward, the JVP against finite differences of the forward (and the adjoint
   identity ``<g, J u> = <J^T g, u>``), the g-weighted HVP against finite
   differences of the VJP.  Kernels are polynomials of known degree ``p``, so a
   central stencil with ``2 * ceil(p / 2)`` points is *exact* (polynomial
   extrapolation), and the only error left is rounding, scaled by the
   magnitude polynomial of every invariant
   (:func:`optinv.testing.magnitude_bound`);
4. **rank** -- the rank of the outputs' Jacobian (from the module's VJP and JVP,
   float64) at random points equals the number of outputs and, where the
   metadata says the set is complete, the bound; cross-checked with the exact
   modular rank and orbit bound of the engine;
5. **integrity**, checked *first* and without executing anything from the
   package -- every file is byte-identical to what the installed optinv
   regenerates from the recorded request (hashes stored beside the files are
   not trusted), no other file is present and no symbolic link.  Only then is
   the module imported, from a private copy of the verified files, sources
   only (``__pycache__`` is never read); otherwise every other property is
   SKIP and nothing from the package runs.


Properties 1-3 run on every backend of every target in the registry
(:mod:`optinv.codegen.targets`): C (float64, float32), the PyTorch adapter (if
torch imports) and CUDA through CuPy (reported SKIP without a GPU).  The test
harness uses the same backends and the same tolerance rule (:mod:`.oracle`).

Modules: :mod:`.report` (results), :mod:`.loading`, :mod:`.backends`,
:mod:`.oracle` (reference and tolerances), :mod:`.stencils`, :mod:`.properties`
(checks 1-4), :mod:`.integrity` (check 5), :mod:`.run` (:func:`verify_module`),
:mod:`.cli`.
Examples come from :mod:`optinv.testing`'s hypothesis strategies, seeded, with no
example database (nothing is written into the working directory).

>>> report = verify_module("hop_l1_n2", max_examples=3, backends=["c-f64"], properties="reference,integrity")
>>> report.ok, [r.status for r in report.results]
(True, ['PASS', 'PASS'])
"""

from optinv.verify.backends import all_backends, backend_names, parse_backends
from optinv.verify.oracle import INVARIANCE_RTOL, RTOL
from optinv.verify.properties import DEFAULT_MAX_EXAMPLES, PROPERTIES, parse_properties
from optinv.verify.report import PropertyResult, VerifyReport
from optinv.verify.run import verify_module
from optinv.verify.stencils import central_weights

__all__ = ["DEFAULT_MAX_EXAMPLES", "INVARIANCE_RTOL", "PROPERTIES", "PropertyResult", "RTOL", "VerifyReport",
           "all_backends", "backend_names", "central_weights", "parse_backends", "parse_properties", "verify_module"]
