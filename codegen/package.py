"""Compiling a request into a generated package on disk, and importing it.

>>> import tempfile
>>> from optinv.algebra.signature import Signature
>>> out = tempfile.mkdtemp()
>>> path = compile_module(["i,i->,v,v"], Signature.from_l_max(1), "vv", out)
>>> mod = load_module(path)
>>> mod.K, mod.EINSUMS
(1, ['i,i->,v,v'])
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from pathlib import Path

import optinv
from optinv.algebra.basis import Basis
from optinv.algebra.errors import OptinvError
from optinv.algebra.graphs import ContractionGraph
from optinv.algebra.select import parse_einsum_list, select_basis
from optinv.algebra.signature import Signature
from optinv.codegen.emit import render_module


def _graphs_of(source, signature: Signature | None) -> tuple[list[ContractionGraph], Signature]:
    if isinstance(source, Basis):
        return source.graphs, source.signature
    if signature is None:
        raise OptinvError("signature: required when compiling a list of einsum strings")
    parsed = parse_einsum_list(list(source), signature)
    return [g for _, g in parsed], signature


def request_signature(request: dict) -> Signature:
    group = request.get("group", "O3")
    if "tensors" in request:
        return Signature.parse(request["tensors"], group)
    return Signature.from_l_max(int(request.get("l_max", 3)), group)


def render_request(request: dict) -> tuple[list[ContractionGraph], Signature]:
    """Turn a recorded request (as in a module's metadata) back into graphs and a signature."""
    sig = request_signature(request)
    if "invariants" in request:
        return _graphs_of(request["invariants"], sig)
    basis = select_basis(sig, int(request["n_max"]), seed=int(request.get("seed", 0)))
    return _graphs_of(basis, None)


def signature_request(sig: Signature) -> dict:
    """The request fields that rebuild ``sig`` exactly (the l_max shorthand keeps its aliases)."""
    l_max = max(t.rank for t in sig.tensors)
    if sig == Signature.from_l_max(l_max, sig.group) and sig.aliases:
        return {"l_max": l_max, "group": sig.group}
    tensors = ",".join(f"{t.name}:{t.rank}" + (":axial" if t.axial else "") for t in sig.tensors)
    return {"tensors": tensors, "group": sig.group}


def write_files(files: dict[str, str], package_dir: Path) -> Path:
    package_dir.mkdir(parents=True, exist_ok=True)
    for fname, text in files.items():
        target = package_dir / fname
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    return package_dir


def compile_module(source, signature: Signature | None, name: str, out_dir, request: dict | None = None) -> Path:
    """Generate package ``out_dir/name`` from a :class:`Basis` or a list of einsum strings (kept in order)."""
    graphs, sig = _graphs_of(source, signature)
    if request is None:
        request = signature_request(sig) | {"invariants": [g.einsum for g in graphs]}
    files = render_module(name, graphs, sig, request)
    return write_files(files, Path(out_dir) / name)


def compile_request(request: dict, name: str, out_dir) -> Path:
    """Generate a package from a request dict (``l_max``/``tensors``, ``group``, ``n_max`` or ``invariants``)."""
    graphs, sig = render_request(request)
    return write_files(render_module(name, graphs, sig, request), Path(out_dir) / name)


def load_module(path):
    """Import a generated package from its directory (a unique module name per path)."""
    path = Path(path).resolve()
    if not (path / "__init__.py").is_file() or not (path / "metadata.json").is_file():
        raise OptinvError(f"{path}: not a generated optinv module (no __init__.py and metadata.json)")
    meta_text = (path / "metadata.json").read_text()
    meta = json.loads(meta_text)
    # Keyed by path and content: a package regenerated in place is imported afresh.
    digest = hashlib.sha256((str(path) + "\0" + meta_text).encode()).hexdigest()[:16]
    mod_name = f"optinv_generated_{meta['name']}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path / "__init__.py", submodule_search_locations=[str(path)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


def hop_module(l_max: int, n_max: int, group: str = "O3", out_dir=None):
    """The generated module for HIP-HOP-NN tensors of ranks 0..l_max and up to n_max factors.

    Committed modules (``optinv.generated.hop_l{L}_n{N}``) are imported as they
    are; any other setting is compiled once into ``out_dir`` (default: the
    per-user cache, ``$OPTINV_CACHE_DIR`` or ``~/.cache/optinv``) and loaded, so
    ``hop_module(6, 5).HopInvariantLayer()`` works for any l_max and n_max.
    """
    from optinv.algebra.signature import normalise_group
    from optinv.codegen.catalog import committed_modules

    group = normalise_group(group)
    name = f"hop_l{l_max}_n{n_max}" + ("" if group == "O3" else "_so3")
    if name in committed_modules():
        return importlib.import_module(f"optinv.generated.{name}")
    if out_dir is None:
        import os

        env = os.environ.get("OPTINV_CACHE_DIR")
        out_dir = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "optinv"
        out_dir = Path(out_dir) / "modules"
    request = {"group": group, "l_max": l_max, "n_max": n_max}
    package = Path(out_dir) / name
    meta = package / "metadata.json"
    stale = not meta.is_file()
    if not stale:
        recorded = json.loads(meta.read_text())
        stale = recorded.get("request") != request or recorded.get("optinv_version") != optinv.__version__
    if stale:  # missing, made for another request, or by another optinv version
        compile_request(request, name, out_dir)
    return load_module(package)
