"""Compiling a request into a generated package on disk, and importing it.

:func:`compile_request` is the one path: a :class:`~optinv.codegen.request.Request`
(or its recorded dict) -> :func:`~optinv.codegen.plan.make_plan` ->
:func:`~optinv.codegen.render.render_module` -> files.  :func:`compile_module`
is the API shortcut from a Basis or a list of einsum strings.

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
import importlib.abc
import importlib.machinery
import importlib.util
import json
import shutil
import sys
from pathlib import Path

from optinv.algebra.basis import Basis
from optinv.algebra.errors import OptinvError
from optinv.algebra.group import O3
from optinv.algebra.select import parse_einsum_list
from optinv.algebra.signature import Signature, normalise_group
from optinv.codegen.catalog import committed_modules
from optinv.codegen.plan import make_plan
from optinv.codegen.render import render_module
from optinv.codegen.request import Request
from optinv.codegen.runtime.native import cache_root, private_dir



def write_files(files: dict[str, str], package_dir: Path) -> Path:
    """Write ``files`` into ``package_dir`` (unchanged files are not touched)."""
    package_dir.mkdir(parents=True, exist_ok=True)
    for fname, text in files.items():
        target = package_dir / fname
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    return package_dir


def compile_request(request: Request | dict, name: str, out_dir, basis: Basis | None = None) -> Path:
    """Generate package ``out_dir/name`` for ``request`` (a :class:`Request` or its recorded dict).

    ``basis``: a Basis already selected for this request (it is used, not selected again).
    """
    if not isinstance(request, Request):
        request = Request.from_dict(request)
    files = render_module(make_plan(request, basis), name)
    return write_files(files, Path(out_dir) / name)


def compile_module(source, signature: Signature | None, name: str, out_dir, targets=None) -> Path:
    """Generate a self-contained Python package of kernels for a Basis or a list of invariants.

    Parameters
    ----------
    source : Basis or list of str
        A basis from :func:`~optinv.algebra.select.select_basis` (used as it is:
        not selected again), or einsum strings, compiled in the order given.
    signature : Signature or None
        The input tensors; required with einsum strings, ignored with a Basis.
    name : str
        The package name (a Python identifier).
    out_dir : str or path-like
        The package is written to ``out_dir/name``.
    targets : list of str, optional
        Names in the target registry (:mod:`optinv.codegen.targets`); default C and CUDA.

    Returns
    -------
    pathlib.Path
        The package directory.  It needs NumPy and a C compiler only: the
        runtime is copied in.  Load it with :func:`load_module`.

    Examples
    --------
    >>> import tempfile
    >>> from optinv.algebra.signature import Signature
    >>> path = compile_module(["i,i->,v,v"], Signature.from_l_max(1), "vv", tempfile.mkdtemp())
    >>> sorted(p.name for p in path.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['__init__.py', '_jax_callback.py', '_jax_ffi.py', '_runtime.py', '_torch.py', '_torch_cpp.py', '_torch_library.py', 'jax_ffi.cc',
     'jax_kernels.py',
     'kernels.c', 'kernels.cu', 'metadata.json', 'torch_kernels.py', 'torch_ops.cpp', 'triton_kernels.py']
    """
    extra = {} if targets is None else {"targets": tuple(targets)}
    if isinstance(source, Basis):
        request = Request.for_signature(source.signature, invariants=tuple(source.einsums), **extra)
        return compile_request(request, name, out_dir, basis=source)
    if signature is None:
        raise OptinvError("signature: required when compiling a list of einsum strings")
    if isinstance(source, str):
        raise OptinvError("invariants: expected a list of einsum strings, got one string")
    parsed = parse_einsum_list(list(source), signature)
    request = Request.for_signature(signature, invariants=tuple(g.einsum for _, g in parsed), **extra)
    return compile_request(request, name, out_dir)


class SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the ``.py`` source on every import: never reads nor writes ``__pycache__``.

    A planted ``.pyc`` (unchecked-hash or timestamp-matched) next to a generated
    package therefore never runs in its place.
    """

    def get_code(self, fullname):
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)

    def set_data(self, path, data, *, _mode=0o666):
        pass  # no bytecode is written


class GeneratedPackageFinder(importlib.abc.MetaPathFinder):
    """Finds the submodules (``_runtime``, ``_torch``) of packages loaded by :func:`import_source_only`."""

    packages: dict[str, Path] = {}

    def find_spec(self, fullname, path=None, target=None):
        parent, _, child = fullname.rpartition(".")
        where = self.packages.get(parent)
        if where is None:
            return None
        source = where / f"{child}.py"
        if not source.is_file() or source.is_symlink():
            return None
        return importlib.util.spec_from_file_location(fullname, source, loader=SourceOnlyLoader(fullname, str(source)))


_FINDER = GeneratedPackageFinder()


def import_source_only(mod_name: str, path: Path):
    """Import the package at ``path`` as ``mod_name`` from its sources only (and its submodules likewise)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    GeneratedPackageFinder.packages[mod_name] = path
    init = path / "__init__.py"
    loader = SourceOnlyLoader(mod_name, str(init))
    spec = importlib.util.spec_from_file_location(mod_name, init, loader=loader,
                                                  submodule_search_locations=[str(path)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        del sys.modules[mod_name]
        GeneratedPackageFinder.packages.pop(mod_name, None)
        raise
    return module


def load_module(path):
    """Import a generated package from its directory.

    Parameters
    ----------
    path : str or path-like
        A directory written by :func:`compile_module` or ``optinv compile``.

    Returns
    -------
    module
        The package, imported under a name unique to its path and metadata (a
        package regenerated in place is imported afresh): ``forward``, ``vjp``,
        ``jvp``, ``hvp`` on NumPy or CuPy arrays, ``torch_invariants``, ``D``, ``K``,
        ``EINSUMS``, ``METADATA``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from optinv.algebra.signature import Signature
    >>> mod = load_module(compile_module(["i,i->,v,v"], Signature.from_l_max(1), "vv", tempfile.mkdtemp()))
    >>> mod.forward(np.array([[0.0, 1.0, 2.0, 2.0]]))
    array([[9.]])
    """
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
    return import_source_only(mod_name, path)  # never from __pycache__



def module_cache_dir() -> Path:
    """Where :func:`hop_module` compiles modules: ``modules/`` of the runtime's cache root, private (0700, ours)."""
    return private_dir(cache_root() / "modules")


#: (request, name) -> the files optinv renders for it: rendered once per process, compared on every load.
_RENDERED: dict[tuple[str, str], dict[str, str]] = {}


def rendered_files(request: Request, name: str) -> dict[str, str]:
    key = (json.dumps(request.to_dict(), sort_keys=True), name)
    if key not in _RENDERED:
        _RENDERED[key] = render_module(make_plan(request), name)
    return _RENDERED[key]


def matches_files(package: Path, files: dict[str, str]) -> bool:
    """True when ``package`` holds exactly ``files`` (regular files, same bytes) and nothing else but __pycache__."""
    if not package.is_dir() or package.is_symlink():
        return False
    present = {p.name for p in package.iterdir() if p.name != "__pycache__"}
    if present != set(files):
        return False
    for fname, text in files.items():
        f = package / fname
        if f.is_symlink() or not f.is_file() or f.read_bytes() != text.encode():
            return False
    return True


def hop_module(l_max: int, n_max: int, group: str = "O3", out_dir=None):
    """The generated module for HIP-HOP-NN tensors of ranks 0..l_max and up to n_max factors.

    Committed modules (``optinv.generated.hop_l{L}_n{N}``) are imported as they
    are; any other setting is compiled once into ``out_dir`` (default: the
    per-user cache, ``$OPTINV_CACHE_DIR`` or ``~/.cache/optinv``) and loaded, so
    ``hop_module(6, 5).HopInvariantLayer()`` works for any l_max and n_max.
    """
    group = normalise_group(group)
    name = f"hop_l{l_max}_n{n_max}" + ("" if group == O3 else f"_{group.lower()}")
    if name in committed_modules():
        return importlib.import_module(f"optinv.generated.{name}")
    out_dir = module_cache_dir() if out_dir is None else Path(out_dir)
    request = Request(group=group, l_max=l_max, n_max=n_max)
    package = out_dir / name
    # Python from a cache is verified before it is imported: the files must be exactly what this optinv
    # renders for the request (anything else -- stale, edited, planted, a link -- is replaced)
    files = rendered_files(request, name)
    if not matches_files(package, files):
        if package.is_symlink() or (package.exists() and not package.is_dir()):
            package.unlink()
        elif package.is_dir():
            shutil.rmtree(package)
        write_files(files, package)
    return load_module(package)
