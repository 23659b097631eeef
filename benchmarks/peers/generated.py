"""The generated C kernel, through the planned ``optinv.codegen`` API (issue 3).

Looked up in this order:

1. the committed module ``optinv.generated.<name>`` (``hop_l{L}_n{N}``, or
   ``hippynn_default`` for HIP-HOP-NN's 13): used directly if it has
   ``forward``/``vjp``, else loaded with ``optinv.codegen.load_module`` from its folder;
2. ``optinv.codegen.compile_module(einsums, signature, name, out_dir)`` into the
   benchmark cache, then ``load_module(path)``.

If ``optinv.codegen`` does not provide ``compile_module`` and ``load_module``
yet, :class:`Unavailable` says so and the harness skips the method.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .cbuild import cache_dir


class Unavailable(RuntimeError):
    """The generated kernel cannot be had (code generator not there yet, or it failed)."""


def codegen_api():
    try:
        cg = importlib.import_module("optinv.codegen")
    except ImportError as exc:
        raise Unavailable(f"optinv.codegen is not importable ({exc})") from exc
    missing = [f for f in ("compile_module", "load_module") if not hasattr(cg, f)]
    if missing:
        raise Unavailable(f"optinv.codegen has no {', '.join(missing)} yet (issue 3 not landed)")
    return cg


def load_generated(name: str, basis_or_einsums, signature):
    """A module with ``forward(x, out=None)``, ``vjp(x, g, out=None)``, ``set_num_threads``, ``metadata``."""
    cg = codegen_api()
    try:
        mod = importlib.import_module(f"optinv.generated.{name}")
    except ImportError:
        mod = None
    if mod is not None:
        if all(hasattr(mod, f) for f in ("forward", "vjp")):
            return mod
        return cg.load_module(Path(mod.__file__).parent)
    out_dir = cache_dir() / "generated"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = cg.compile_module(basis_or_einsums, signature, name, out_dir)
    return cg.load_module(path)


def module_metadata(mod) -> dict | None:
    """The module's metadata: ``metadata`` / ``METADATA`` attribute, else ``metadata.json`` beside it."""
    for attr in ("metadata", "METADATA"):
        try:
            meta = getattr(mod, attr)
        except AttributeError:
            continue
        if isinstance(meta, dict):
            return meta
    src = getattr(mod, "__file__", None)
    if src:
        path = Path(src).parent / "metadata.json"
        if path.exists():
            import json

            return json.loads(path.read_text())
    return None


def metadata_flops(meta) -> tuple[int | None, int | None]:
    """(forward, vjp) flops per row from a module's metadata, whatever spelling it settles on."""
    if not isinstance(meta, dict):
        return None, None
    fl = meta.get("flops")
    fwd = vjp = None
    if isinstance(fl, dict):
        fwd = fl.get("forward", fl.get("fwd"))
        vjp = fl.get("vjp", fl.get("backward", fl.get("bwd")))
    elif isinstance(fl, (int, float)):
        fwd = fl
    fwd = meta.get("flops_forward", fwd)
    vjp = meta.get("flops_vjp", vjp)
    return (int(fwd) if fwd is not None else None, int(vjp) if vjp is not None else None)
