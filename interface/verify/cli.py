"""``optinv verify PATH``: the command line of :func:`~optinv.verify.run.verify_module`."""

from __future__ import annotations


from optinv.cli_args import seed_type, write_json_text
from optinv.verify.backends import COMPILED_KINDS, EMULATION_KINDS, all_backends, backend_names
from optinv.verify.properties import DEFAULT_MAX_EXAMPLES, PROPERTIES
from optinv.verify.loading import shadowing_note
from optinv.verify.report import PropertyResult
from optinv.verify.run import verify_module



def cmd_verify(args) -> int:
    def show(item) -> None:
        print(item.line() if isinstance(item, PropertyResult) else item, flush=True)

    note = shadowing_note(args.path)
    if note:
        print(note, flush=True)
    report = verify_module(
args.path, max_examples=args.max_examples, seed=args.seed, backends=args.backends,
                           properties=args.properties, progress=show, run_unverified=args.run_unverified)
    print(report.summary())
    if args.json:
        write_json_text(args.json, report.to_json())
    return 0 if report.ok else 1


def register(sub) -> None:
    p = sub.add_parser("verify", help="check a generated module with property-based tests (exit 0 only if all pass)",
                       description="Check a generated module: invariance, agreement with the engine's reference, "
                                   "derivatives, rank/completeness and integrity, on every available backend.")
    p.add_argument("path", help="a generated module's directory, or the name of a committed module (e.g. hop_l3_n4)")
    p.add_argument("--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES,
                   help=f"hypothesis examples per property and backend (default {DEFAULT_MAX_EXAMPLES})")
    p.add_argument("--seed", type=seed_type, default=0, help="seed of the examples; same seed, same run (default 0)")
    p.add_argument("--json", help="write a machine-readable report to this path")
    kinds = ", ".join(dict.fromkeys(b.kind for b in all_backends()))
    p.add_argument("--backends", help=f"comma-separated subset of {', '.join(backend_names())} "
                                      f"or kinds {kinds}, or 'all' (default: all but the CPU emulations of GPU code, "
                                      f"{', '.join(EMULATION_KINDS)}, and the C++ operators, {', '.join(COMPILED_KINDS)}; "
                                      f"unavailable ones are SKIP)")
    p.add_argument("--properties", help=f"comma-separated subset of {', '.join(PROPERTIES)} (default: all)")
    p.add_argument("--run-unverified", action="store_true",
                   help="also run the other properties when integrity fails, which EXECUTES the package's code: "
                        "only for a package you wrote yourself (default: off; nothing from a package that fails "
                        "integrity runs)")
    p.set_defaults(func=cmd_verify)

