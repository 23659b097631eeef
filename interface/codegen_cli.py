"""``optinv compile`` and ``optinv generate``: the code generator's command line."""

from __future__ import annotations

import json
import keyword
from pathlib import Path

from optinv.algebra.basis import Basis
from optinv.algebra.errors import OptinvError


def cmd_compile(args) -> int:
    from optinv.cli import read_text_lines, signature_from_args
    from optinv.codegen.build import signature_request
    from optinv.codegen.build import compile_request, load_module
    from optinv.algebra.select import parse_einsum_list

    if not args.name.isidentifier() or keyword.iskeyword(args.name):
        raise OptinvError(f"--name: expected a Python identifier that is not a keyword, got {args.name!r}")
    sources = [bool(args.basis), bool(args.invariants), args.n_max is not None]
    if sum(sources) != 1:
        raise OptinvError("give exactly one of --n-max (search a basis), --basis FILE or --invariants FILE")
    if args.basis:
        path = Path(args.basis)
        if not path.is_file():
            raise OptinvError(f"--basis: no such file {args.basis!r}")
        try:
            basis = Basis.from_json(path.read_text(encoding="utf-8"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise OptinvError(f"--basis: {args.basis!r} is not a basis JSON file ({exc})") from None
        sig = basis.signature
        request = signature_request(sig) | {"invariants": basis.einsums}
    elif args.invariants:
        path = Path(args.invariants)
        if not path.is_file():
            raise OptinvError(f"--invariants: no such file {args.invariants!r}")
        lines = [ln.split("#", 1)[0].strip() for ln in read_text_lines(path, "--invariants")]
        lines = [ln for ln in lines if ln]
        names = [n.strip() for ln in lines if "->" in ln for n in ln.split("->", 1)[1].split(",")[1:]]
        sig, request = signature_from_args(args, names_hint=names)
        parse_einsum_list(lines, sig)  # validate with line numbers before recording the request
        request = request | {"invariants": lines}
    else:
        if args.n_max < 1:
            raise OptinvError(f"--n-max: expected an integer >= 1, got {args.n_max}")
        if args.l_max is None and args.tensors is None:
            raise OptinvError("give --l-max or --tensors with --n-max")
        sig, request = signature_from_args(args)
        request = request | {"n_max": args.n_max}
    package = compile_request(request, args.name, args.out)
    meta = json.loads((package / "metadata.json").read_text())
    print(f"wrote {package}: {meta['K']} invariants of {sig.describe()}")
    print("flops per row: " + ", ".join(f"{k} {meta['flops'][k]}" for k in ("forward", "vjp", "jvp", "hvp"))
          + f" (strategy {meta['strategy']}; candidates {meta['strategy_flops']})")
    if args.build:
        lib = load_module(package).build(verbose=False)
        print(f"built C library: {lib}")
    return 0


def cmd_generate(args) -> int:
    from optinv.codegen.build import compile_request
    from optinv.codegen.catalog import committed_modules, generated_dir

    out = Path(args.out) if args.out else generated_dir()
    for name, request in committed_modules().items():
        compile_request(request, name, out)
        print(f"wrote {out / name}")
    return 0


def register(sub) -> None:
    from optinv.cli import add_signature_args

    p = sub.add_parser("compile", help="generate a kernel module (C, CUDA, Python) for a basis")
    add_signature_args(p)
    p.add_argument("--n-max", type=int, help="search a basis with at most this many factors per invariant")
    p.add_argument("--basis", help="compile a basis JSON written by `optinv basis --json`")
    p.add_argument("--invariants", help="compile this list of einsum strings exactly as given (one per line)")
    p.add_argument("--name", required=True, help="Python package name of the generated module")
    p.add_argument("--out", default=".", help="directory to write the package into (default: .)")
    p.add_argument("--build", action="store_true", help="compile the C library now and report where")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("generate", help="regenerate every module committed under generated/")
    p.add_argument("--out", help="write somewhere else than the package's generated/ folder")
    p.set_defaults(func=cmd_generate)
