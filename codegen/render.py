"""Rendering: a :class:`~optinv.codegen.plan.Plan` -> the files of a Python package.

Pure: the same plan gives byte-identical files.  Each target in the registry
renders its own files; this module adds the package's ``__init__.py`` (which
dispatches to the targets' runtime loaders), the runtime copies when the
request bundles them, and ``metadata.json``.  Writing and loading live in
:mod:`optinv.codegen.package`.
"""

from __future__ import annotations

import hashlib
import json
import keyword
from pathlib import Path

import jinja2

import optinv.templates
from optinv.algebra.errors import OptinvError
from optinv.algebra.signature import Signature
from optinv.codegen import simd
from optinv.codegen.plan import Plan
from optinv.codegen.runtime import BUNDLED_FILES, runtime_source
from optinv.codegen.targets import get_target
from optinv.codegen.targets.base import ARG_ORDER, REAL_TYPES
from optinv.version import __version__

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(optinv.templates.__file__).parent)),
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,
)
# The C template plans its register shuffles with these (checked by simulation when called).
TEMPLATES.globals.update(transpose_stages=simd.transpose_stages, pack_plan=simd.pack_plan)


def _layout(signature: Signature) -> str:
    parts = []
    for spec, off in zip(signature.tensors, signature.offsets()):
        parts.append(f"{spec.name} (rank {spec.rank}) at columns {off}..{off + spec.size - 1}")
    return "; ".join(parts)


def check_package_name(name: str) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise OptinvError(f"name: expected a Python identifier that is not a keyword, got {name!r}")
    return name


def render_module(plan: Plan, name: str) -> dict[str, str]:
    """All files of the generated package ``name``, as text, keyed by file name."""
    check_package_name(name)
    sig, request = plan.signature, plan.request
    D, K = sig.dim, len(plan.graphs)
    programs = plan.programs.by_name()
    targets = [get_target(t) for t in request.targets]
    loaders = [t for t in targets if t.loader]
    common = {
        # the package's CUDA kernels object, if it has the cuda target (the torch routes run CUDA tensors on it)
        "cuda": "_cuda" if any(t.attribute == "_cuda" for t in loaders) else "None",
        "name": name,
        "version": __version__,
        "request": json.dumps(request.to_dict(), sort_keys=True),
        "signature": sig.describe(),
        "D": D,
        "K": K,
        "types": REAL_TYPES,
        "convention": sig.convention,
        "layout": _layout(sig),
        "invariants": [g.einsum for g in plan.graphs],
    }
    files: dict[str, str] = {}
    for target in targets:
        files.update(target.render(TEMPLATES, common, programs))
    widths = {"x": D, "g": K, "u": D}
    signatures = [{"name": n, "args": [{"name": a, "width": widths[a]} for a in ARG_ORDER[n]], "width": len(p.outputs)}
                  for n, p in programs.items()]
    files["__init__.py"] = TEMPLATES.get_template("module_init.py.j2").render(
        common, kernels=signatures, bundle_runtime=request.bundle_runtime,
        dispatched=[t for t in loaders if t.array_modules],
        default=next(t for t in loaders if not t.array_modules),
        loaders=loaders,
        sections=[s for s in (t.init_section(TEMPLATES, common) for t in targets) if s])
    if request.bundle_runtime:
        for module, fname in BUNDLED_FILES.items():
            files[fname] = runtime_source(module)
    metadata = {
        "name": name,
        "optinv_version": __version__,
        "request": request.to_dict(),
        "signature": sig.to_dict(),
        "convention": sig.convention,
        "group": sig.group,
        "D": D,
        "K": K,
        "invariants": [g.einsum for g in plan.graphs],
        "degrees": [g.degree for g in plan.graphs],
        "pseudoscalar": [g.parity(sig) == -1 for g in plan.graphs],
        "flops": plan.programs.flops,
        "strategy": plan.programs.forward.strategy,
        "strategy_flops": plan.programs.forward.notes.get("strategies", {}),
        "basis": plan.certificate,
        "sha256": {fname: hashlib.sha256(text.encode()).hexdigest() for fname, text in sorted(files.items())},
    }
    files["metadata.json"] = json.dumps(metadata, indent=2, sort_keys=True) + "\n"
    return files
