"""ACE refinement example: functionally independent ACE descriptors on real data.

Modules:

* :mod:`.radial`      -- Chebyshev radial basis with a smooth cutoff, per element pair,
  and the symmetric traceless unit-vector tensors in the engine's coefficient convention.
* :mod:`.sets`        -- descriptor sets: the full linear ACE basis up to ``nu_max``
  (products of connected contraction graphs, linearly independent subset) and the
  functionally independent subset from :func:`optinv.algebra.select.select_basis`.
* :mod:`.flexible_sets` -- the third set: the flexible subset (complete at generic points and at
  the maximum rank on every degenerate stratum), and exact per-stratum ranks of any set.
* :mod:`.backends`    -- pluggable invariant backends (torch.einsum now, generated kernels later).
* :mod:`.descriptors` -- ASE ``Atoms`` -> neighbour pairs -> ``A_{n,l}`` -> per-atom descriptors,
  forces through autograd.
* :mod:`.data`        -- dataset generators (methane / GFN2-xTB via tblite, Cu / EMT), cached ``.npz``.
* :mod:`.fit`         -- the comparison: the same MLP recipe on the three descriptor sets.
* :mod:`.why_methane` -- ranks on strata and Jacobian conditioning of the three sets on methane.
"""
