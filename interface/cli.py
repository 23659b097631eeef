"""Command line: ``optinv basis | check | table | ...``.

Every subcommand turns bad input into a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from optinv import ace_cli, codegen_cli
from optinv.algebra.errors import OptinvError
from optinv.limits import check_n_max, heartbeat
from optinv.version import __version__

from optinv.codegen.runtime.native import CacheSecurityError, KernelBuildError

from optinv.algebra.signature import Signature
from optinv.algebra.flexible import select_flexible_basis
from optinv.algebra.select import check_invariants, select_basis
from optinv.algebra.strata import catalogue
from optinv.cli_args import (
    DEFAULT_NODES,
    add_signature_args,
    add_strata_args,
    progress_printer,
    read_text_lines,
    nonnegative_int,
    seed_type,
    signature_from_args,
    strata_from_args,
    write_json,
    write_json_text,
    JSON_STDOUT,
)


from optinv.verify import cli as verify_cli


def select_from_args(args, sig: Signature, request: dict):
    """The basis the arguments ask for: generic (with a strata report) or flexible."""
    strata = strata_from_args(args, sig)
    progress = progress_printer(not getattr(args, "quiet", True))
    if getattr(args, "flexible", False):
        request["flexible"] = True
        if getattr(args, "strata", None) is not None:
            request["strata"] = args.strata
        if args.search_nodes != DEFAULT_NODES:
            request["search_nodes"] = args.search_nodes
        return select_flexible_basis(sig, args.n_max, strata, seed=args.seed, progress=progress, request=request,
                                     max_nodes=args.search_nodes)
    return select_basis(sig, args.n_max, seed=args.seed, progress=progress, request=request, strata=strata)


def cmd_basis(args) -> int:
    if args.l_max is None and args.tensors is None:
        args.l_max = 3
    check_n_max(args.n_max)
    sig, request = signature_from_args(args)
    request["n_max"] = args.n_max
    with heartbeat(f"selecting a basis of {sig.describe()} with up to {args.n_max} factors",
                   enabled=not getattr(args, "quiet", False)):
        basis = select_from_args(args, sig, request)
    print(basis.report())
    if args.json:
        write_json_text(args.json, basis.to_json())
    return 0


def cmd_check(args) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise OptinvError(f"FILE: no such file {args.file!r}")
    lines = read_text_lines(path, "FILE")
    names = []
    for raw in lines:
        text = raw.split("#", 1)[0].strip()
        if "->" in text:
            names += [n.strip() for n in text.split("->", 1)[1].split(",")[1:]]
    sig, _ = signature_from_args(args, names_hint=names)
    if args.n_max is not None and args.n_max < 1:
        raise OptinvError(f"--n-max: expected an integer >= 1, got {args.n_max}")
    check_n_max(args.n_max)
    report = check_invariants(lines, sig, seed=args.seed, strata=strata_from_args(args, sig), n_max=args.n_max)
    print(f"signature {sig.describe()}")
    print(report.report())
    if args.json:
        write_json_text(args.json, json.dumps(report.to_dict(), indent=2) + "\n")
    if args.strict and not (report.all_independent and report.complete):
        return 1
    return 0


def cmd_table(args) -> int:
    if not 0 <= args.l_min <= args.l_max:
        raise OptinvError(f"--l-min/--l-max: expected 0 <= l_min <= l_max, got {args.l_min} and {args.l_max}")
    if not 1 <= args.n_min <= args.n_max:
        raise OptinvError(f"--n-min/--n-max: expected 1 <= n_min <= n_max, got {args.n_min} and {args.n_max}")
    check_n_max(args.n_max)
    Signature.from_l_max(args.l_max, args.group)  # validates l_max and the group before any work
    l_values = range(args.l_min, args.l_max + 1)
    n_values = range(args.n_min, args.n_max + 1)
    progress = progress_printer(not args.quiet)
    if args.flexible:
        return _flexible_table(args, l_values, n_values, progress)
    cells = {}
    for l in l_values:
        sig = Signature.from_l_max(l, args.group)
        for n in n_values:
            b = select_basis(sig, n, seed=args.seed)
            cells[l, n] = b
            if progress:
                progress(f"l_max={l} n_max={n}: rank {b.rank} / bound {b.bound.bound}")
    header = "| l_max \\ n_max | " + " | ".join(str(n) for n in n_values) + " |"
    lines = [header, "|" + "---|" * (len(n_values) + 1)]
    for l in l_values:
        row = []
        for n in n_values:
            b = cells[l, n]
            mark = "" if b.complete else ("" if b.exhausted else "?")
            row.append(f"{b.rank} / {b.bound.bound}{mark}")
        lines.append(f"| {l} | " + " | ".join(row) + " |")
    print("\n".join(lines))
    if args.json:
        data = [{"l_max": l, "n_max": n, "rank": b.rank, "bound": b.bound.bound, "complete": b.complete,
                 "exhausted": b.exhausted, "examined": b.examined} for (l, n), b in cells.items()]
        write_json_text(args.json, json.dumps(data, indent=2) + "\n")
    return 0


def _flexible_table(args, l_values, n_values, progress) -> int:
    """One markdown table per l_max: each stratum's rank, generic / flexible / maximum, for every n_max."""
    blocks, data = [], []
    for l in l_values:
        sig = Signature.from_l_max(l, args.group)
        strata = catalogue(sig)
        cells = {}
        for n in n_values:
            generic = select_basis(sig, n, seed=args.seed, strata=strata)
            flexible = select_flexible_basis(sig, n, strata, seed=args.seed, max_nodes=args.search_nodes)
            cells[n] = (generic, flexible)
            data.append({"l_max": l, "n_max": n, "generic": generic.to_dict(), "flexible": flexible.to_dict()})
            if progress:
                progress(f"l_max={l} n_max={n}: generic {len(generic)} invariants, flexible {len(flexible)} "
                         f"({flexible.selection})")
        head = "| stratum | bound | " + " | ".join(f"n_max={n}: generic / flexible / max" for n in n_values) + " |"
        lines = [f"l_max = {l} ({sig.describe()}); each cell: rank of the generic basis / of the flexible basis / "
                 "maximum with n_max factors", "", head, "|---|---:|" + "---:|" * len(n_values)]
        size_cells = [f"{len(g)} / {len(fl)} / -" for g, fl in (cells[n] for n in n_values)]
        lines.append("| *invariants* | | " + " | ".join(size_cells) + " |")
        for k, st in enumerate(cells[n_values[0]][0].strata):
            row = []
            for n in n_values:
                g, fl = cells[n][0].strata[k], cells[n][1].strata[k]
                mark = "" if g.rank == g.max_rank else "*"
                row.append(f"{g.rank}{mark} / {fl.rank} / {fl.max_rank}")
            lines.append(f"| {st.name} | {st.bound} | " + " | ".join(row) + " |")
        blocks.append("\n".join(lines))
    print("\n\n".join(blocks))
    print("\n* the generic basis is below the maximum achievable on that stratum")
    if args.json:
        write_json(args.json, data)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optinv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("basis", help="select a minimal complete invariant basis")
    add_signature_args(p)
    p.add_argument("--n-max", type=int, default=4, help="at most this many tensor factors per invariant (default 4)")
    p.add_argument("--json", help="write the basis as JSON to this path ('-': stdout)")
    p.add_argument("--seed", type=seed_type, default=0, help="seed of the random points (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_strata_args(p)
    p.set_defaults(func=cmd_basis)

    p = sub.add_parser("check", help="check a given list of einsum strings (one per line)")
    p.add_argument("file", help="a text file of einsum strings, one per line ('#' starts a comment)")
    add_signature_args(p)
    p.add_argument("--json", help="write the report as JSON to this path ('-': stdout)")
    p.add_argument("--seed", type=seed_type, default=0, help="seed of the random points")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 unless every entry is independent and the set reaches the bound")
    add_strata_args(p, flexible=False)
    p.add_argument("--n-max", type=int, default=None,
                   help="the strata report's 'max' is over candidates with at most this many factors "
                        "(default: the largest degree in the list)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("table", help="rank reached and bound for a range of l_max and n_max (markdown)")
    p.add_argument("--l-min", type=int, default=0, help="first row: smallest largest tensor rank")
    p.add_argument("--l-max", type=int, default=5, help="last row: largest tensor rank")
    p.add_argument("--n-min", type=int, default=1, help="first column: fewest factors per invariant")
    p.add_argument("--n-max", type=int, default=6, help="last column: most factors per invariant")
    p.add_argument("--group", default="O3", type=str.upper, help="O3 or SO3")
    p.add_argument("--json", help="write the cells as JSON to this path ('-': stdout)")
    p.add_argument("--seed", type=seed_type, default=0, help="seed of the random points")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--flexible", action="store_true",
                   help="per-stratum tables instead: generic and flexible bases side by side with the maximum")
    p.add_argument("--search-nodes", type=nonnegative_int, default=DEFAULT_NODES,
                   help=f"node budget of each flexible search (default {DEFAULT_NODES})")
    p.set_defaults(func=cmd_table)

    # subcommands that live in their own modules (code generation, verification, ACE)
    for module in (codegen_cli, verify_cli, ace_cli):
        module.register(sub)
    parser.add_argument("--version", action="version", version=f"optinv {__version__}",
                        help="print the version and exit")
    for p in [parser, *sub.choices.values()]:
        with_defaults(p)
    return parser


def with_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option's help says its default (appended where the text does not already)."""
    for action in parser._actions:
        if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        text = action.help or ""
        if "default" in text:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            default = "off"
        elif action.default is None:
            default = "not set"
        else:
            default = str(action.default).replace("%", "%%")
        action.help = f"{text} (default: {default})".strip()


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "json", None) == "-":
        # --json -: the JSON alone on stdout; everything else a human reads goes to stderr
        JSON_STDOUT["stream"] = sys.stdout
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return run(args)
        finally:
            JSON_STDOUT["stream"] = None
    return run(args)


def run(args) -> int:
    try:
        return args.func(args)
    except (OptinvError, KernelBuildError, CacheSecurityError) as exc:
        print(f"optinv: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        # a self-contained package's own copy of the runtime defines its own classes of these errors
        if type(exc).__name__ not in (KernelBuildError.__name__, CacheSecurityError.__name__):
            raise
        print(f"optinv: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output path that cannot be written, a directory given as a file, ...
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"optinv: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
