"""Property 5 of ``optinv verify``: the files are what optinv generates for the recorded request."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from optinv.codegen.package import compile_request
from optinv.verify.properties import Context


def first_difference(a: bytes, b: bytes) -> str:
    la, lb = a.decode(errors="replace").splitlines(), b.decode(errors="replace").splitlines()
    for i, (x, y) in enumerate(zip(la, lb), start=1):
        if x != y:
            return f"line {i}: {x.strip()[:60]!r} vs regenerated {y.strip()[:60]!r}"
    return f"{len(la)} lines vs {len(lb)} regenerated"


def check_integrity(ctx: Context):
    problems = []
    hashes = ctx.meta.get("sha256", {})
    if not hashes:
        problems.append("metadata.json records no sha256")
    for fname, digest in sorted(hashes.items()):
        f = ctx.path / fname
        if not f.is_file():
            problems.append(f"{fname} is missing")
        elif hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            problems.append(f"{fname} does not match its sha256 in metadata.json (edited?)")
    if ctx.module.D != ctx.D or ctx.module.K != ctx.K:
        problems.append(f"the module says D={ctx.module.D}, K={ctx.module.K} but metadata.json gives "
                        f"D={ctx.D}, K={ctx.K}")
    request, name = ctx.meta.get("request"), ctx.meta.get("name")
    if not isinstance(request, dict) or not name:
        problems.append("metadata.json records no request to regenerate from")
    else:
        with tempfile.TemporaryDirectory(prefix="optinv-verify-") as tmp:
            try:
                fresh = compile_request(request, name, tmp)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"regenerating from the recorded request failed: {type(exc).__name__}: {exc}")
            else:
                expected = sorted(p.name for p in fresh.iterdir() if p.is_file())
                for fname in expected:
                    mine = ctx.path / fname
                    if not mine.is_file():
                        problems.append(f"regenerated {fname} is missing here")
                        continue
                    a, b = mine.read_bytes(), (fresh / fname).read_bytes()
                    if a != b:
                        problems.append(f"{fname} differs from the regenerated file ({first_difference(a, b)})")
    if problems:
        return "FAIL", 0, "; ".join(problems), None
    return "PASS", 0, (f"{len(hashes)} files match their sha256; regenerated from the recorded request, "
                       f"byte-identical"), None



def edited_python_files(where: Path) -> list[str]:
    """Python files of the package whose sha256 differs from metadata.json (checked before any import)."""
    try:
        hashes = json.loads((where / "metadata.json").read_text()).get("sha256", {})
    except (OSError, ValueError):
        return []
    edited = []
    for fname, digest in sorted(hashes.items()):
        f = where / fname
        if fname.endswith(".py") and f.is_file() and hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            edited.append(fname)
    return edited
