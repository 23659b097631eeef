"""``optinv compile`` and ``optinv generate``: the code generator's command line.

The arguments become one :class:`~optinv.codegen.request.Request` (and, for
``--basis``, the Basis read from the file travels with it), handed to
:func:`~optinv.codegen.package.compile_request`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from optinv.algebra.basis import Basis
from optinv.algebra.errors import OptinvError
from optinv.algebra.select import check_invariants, parse_einsum_list
from optinv.cli_args import (
    DEFAULT_NODES,
    progress_printer,

    add_signature_args,
    add_strata_args,
    read_text_lines,
    signature_from_args,
    strata_from_args,
)
from optinv.codegen.catalog import committed_modules, generated_dir
from optinv.codegen.package import compile_request, load_module
from optinv.codegen.render import check_package_name
from optinv.codegen.request import Request
from optinv.codegen.targets import targets
from optinv.limits import check_n_max, heartbeat, shadows_a_module


def request_from_args(args) -> tuple[Request, Basis | None]:
    """The request the command line describes, and the Basis when one was given (``--basis``)."""
    sources = [bool(args.basis), bool(args.invariants), args.n_max is not None]
    if sum(sources) != 1:
        raise OptinvError("give exactly one of --n-max (search a basis), --basis FILE or --invariants FILE")
    if args.flexible and args.n_max is None:
        raise OptinvError("--flexible: goes with --n-max (a search), not with --basis or --invariants")
    chosen = tuple(t.strip() for t in args.targets.split(",") if t.strip()) if args.targets else None
    extra = {} if chosen is None else {"targets": chosen}
    if args.basis:
        path = Path(args.basis)
        if not path.is_file():
            raise OptinvError(f"--basis: no such file {args.basis!r}")
        try:
            basis = Basis.from_json(path.read_text(encoding="utf-8"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise OptinvError(f"--basis: {args.basis!r} is not a basis JSON file ({exc})") from None
        return Request.for_signature(basis.signature, invariants=tuple(basis.einsums), **extra), basis
    if args.invariants:
        path = Path(args.invariants)
        if not path.is_file():
            raise OptinvError(f"--invariants: no such file {args.invariants!r}")
        lines = [ln.split("#", 1)[0].strip() for ln in read_text_lines(path, "--invariants")]
        lines = [ln for ln in lines if ln]
        names = [n.strip() for ln in lines if "->" in ln for n in ln.split("->", 1)[1].split(",")[1:]]
        sig, fields = signature_from_args(args, names_hint=names)
        parse_einsum_list(lines, sig)  # validate with line numbers before recording the request
        warn_if_dependent(lines, sig, args.strict)
        return Request(**fields, invariants=tuple(lines), parsed_signature=sig, **extra), None
    if args.n_max < 1:
        raise OptinvError(f"--n-max: expected an integer >= 1, got {args.n_max}")
    check_n_max(args.n_max)
    if args.l_max is None and args.tensors is None:
        raise OptinvError("give --l-max or --tensors with --n-max")
    sig, fields = signature_from_args(args)
    if args.flexible:
        strata_from_args(args, sig)  # validate the spec before any work
        extra |= {"flexible": True, "strata": args.strata}
        if args.search_nodes != DEFAULT_NODES:
            extra["search_nodes"] = args.search_nodes
    return Request(**fields, n_max=args.n_max, parsed_signature=sig, **extra), None


def warn_if_dependent(lines: list[str], sig, strict: bool) -> None:
    """As ``optinv check`` would: a list with entries that are functions of earlier ones warns (--strict refuses)."""
    report = check_invariants(lines, sig)
    dependent = [k for k, e in enumerate(report.entries) if not e.independent]
    if not dependent:
        return
    what = (f"--invariants: {len(dependent)} of {len(lines)} entries are functions of earlier ones (lines "
            + ", ".join(str(k + 1) for k in dependent) + f"; rank {report.rank}); `optinv check` explains")
    if strict:
        raise OptinvError(what + "; --strict refuses a dependent list")
    print(f"optinv: warning: {what}; compiling them anyway (--strict refuses)", file=sys.stderr)


def cmd_compile(args) -> int:
    try:
        check_package_name(args.name)
    except OptinvError as exc:
        raise OptinvError(f"--{exc}") from None
    shadowed = shadows_a_module(args.name, args.out)
    if shadowed:
        raise OptinvError(f"--name: {args.name!r} is the name of an importable module ({shadowed}); a package of that "
                          f"name would shadow it wherever it is imported from: choose another name")
    request, basis = request_from_args(args)
    progress = progress_printer(not args.quiet)
    if progress:
        progress(f"planning and generating {args.name} (selection, contraction order, code) ...")
    with heartbeat(f"planning and generating {args.name}", enabled=not args.quiet):
        package = compile_request(request, args.name, args.out, basis=basis)
    meta = json.loads((package / "metadata.json").read_text())
    print(f"wrote {package}: {meta['K']} invariants of {request.signature.describe()}")
    print("flops per row: " + ", ".join(f"{k} {meta['flops'][k]}" for k in ("forward", "vjp", "jvp", "hvp"))
          + f" (strategy {meta['strategy']}; candidates {meta['strategy_flops']})")
    if args.build:
        if progress:
            progress(f"compiling the C library of {args.name} (once; cached) ...")
        with heartbeat(f"compiling the C library of {args.name}", enabled=not args.quiet):
            lib = load_module(package).build(verbose=False)
        print(f"built C library: {lib}")
    return 0


def cmd_generate(args) -> int:
    out = Path(args.out) if args.out else generated_dir()
    for name, request in committed_modules().items():
        compile_request(request, name, out)
        print(f"wrote {out / name}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("compile", help="generate a kernel module (C, CUDA, Python) for a basis")
    add_signature_args(p)
    p.add_argument("--n-max", type=int, help="search a basis with at most this many factors per invariant")
    p.add_argument("--basis", help="compile a basis JSON written by `optinv basis --json`")
    p.add_argument("--invariants", help="compile this list of einsum strings exactly as given (one per line)")
    p.add_argument("--name", required=True, help="Python package name of the generated module")
    p.add_argument("--out", default=".", help="directory to write the package into (default: .)")
    p.add_argument("--targets", help="comma-separated targets from the registry (default: "
                                     + ",".join(t.name for t in targets()) + ")")
    p.add_argument("--build", action="store_true", help="compile the C library now and report where (default: "
                                                        "on first use)")
    p.add_argument("--strict", action="store_true",
                   help="with --invariants: refuse a list with dependent entries (default: warn and compile)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr (default: progress shown)")
    add_strata_args(p)
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("generate", help="regenerate every module committed under generated/")
    p.add_argument("--out", help="write somewhere else than the package's generated/ folder")
    p.set_defaults(func=cmd_generate)
