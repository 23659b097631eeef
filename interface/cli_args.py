"""Command-line arguments shared by the subcommands: signatures, seeds, text files, progress lines."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import json

from optinv.algebra.errors import OptinvError
from optinv.algebra.flexible import DEFAULT_NODES
from optinv.algebra.strata import DEFAULT_STRATA_N_MAX, parse_strata_spec
from optinv.algebra.signature import EPSILON, WORD_NAMES, Signature, default_name


def progress_printer(enabled: bool):
    """A callback printing timestamped progress lines on stderr (None when disabled)."""
    if not enabled:
        return None
    start = time.perf_counter()

    def report(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.2f}s] {message}", file=sys.stderr, flush=True)

    return report


def signature_from_args(args, names_hint: list[str] | None = None) -> tuple[Signature, dict]:
    """The signature named on the command line (``--l-max`` or ``--tensors``), and the request dict."""
    group = getattr(args, "group", "O3")
    if getattr(args, "tensors", None) is not None and getattr(args, "l_max", None) is not None:
        raise OptinvError("give either --l-max or --tensors, not both")
    if getattr(args, "tensors", None) is not None:
        return Signature.parse(args.tensors, group), {"tensors": args.tensors, "group": group}
    if getattr(args, "l_max", None) is not None:
        return Signature.from_l_max(args.l_max, group), {"l_max": args.l_max, "group": group}
    if names_hint is not None:
        return _infer_signature(names_hint, group)
    return Signature.from_l_max(3, group), {"l_max": 3, "group": group}


def _infer_signature(names: list[str], group: str) -> tuple[Signature, dict]:
    """Infer an l_max signature from standard names (s, v, q, t, lN, or hippynn's zero, one, ...)."""
    rank_of = {default_name(l): l for l in range(13)} | {w: l for l, w in enumerate(WORD_NAMES)}
    ranks = []
    for name in names:
        if name == EPSILON:
            continue
        if name not in rank_of:
            raise OptinvError(
                f"unknown tensor name {name!r}: give --tensors 'name:rank,...' or use standard names "
                "(s, v, q, t, l4, ... or zero, one, two, three, ...)"
            )
        ranks.append(rank_of[name])
    l_max = max(ranks) if ranks else 0
    return Signature.from_l_max(l_max, group), {"l_max": l_max, "group": group}


def read_text_lines(path: Path, what: str) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise OptinvError(f"{what}: {str(path)!r} is not a UTF-8 text file") from None


def nonnegative_int(text: str) -> int:
    """argparse type for an integer >= 0 (--seed: NumPy's generators need one; --search-nodes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


seed_type = nonnegative_int


def group_name(text: str) -> str:
    """argparse type for --group: ``o3``, ``SO(3)``, ... -> ``O3``, ``SO3`` (validated with the signature)."""
    return text.upper().replace("(", "").replace(")", "")


def add_signature_args(p: argparse.ArgumentParser, l_max_default=None) -> None:
    p.add_argument("--l-max", type=int, default=l_max_default, help="one tensor of each rank 0..L (s, v, q, t, l4, ...)")
    p.add_argument("--tensors", help="explicit tensors, e.g. 'a:1,b:1,q:2' (third field 'axial' for pseudotensors)")
    p.add_argument("--group", default="O3", type=group_name,
                   help="O3 (default) or SO3 (adds pseudoscalars built with one Levi-Civita symbol)")


def strata_from_args(args, sig: Signature):
    """The strata named by ``--strata`` (default: the whole catalogue; ``none``: no strata report)."""
    spec = getattr(args, "strata", None)
    if spec is not None and spec.strip().lower() == "none":
        if getattr(args, "flexible", False):
            raise OptinvError("--strata none: a flexible basis needs strata (give a list, or leave --strata out)")
        return None
    n_max = getattr(args, "n_max", None)
    if spec is None and not getattr(args, "flexible", False) and n_max is not None and n_max > DEFAULT_STRATA_N_MAX:
        # the report's maximum needs every candidate with n_max factors: costly beyond this
        print(f"(no strata report by default for n_max > {DEFAULT_STRATA_N_MAX}: it enumerates every candidate; "
              "pass --strata all to ask for it)", file=sys.stderr)
        return None
    return parse_strata_spec(spec, sig)


def add_strata_args(p: argparse.ArgumentParser, flexible: bool = True) -> None:
    p.add_argument("--strata", metavar="SPEC|FILE",
                   help="degenerate strata to report (and, with --flexible, to be complete on): a comma list of "
                        "kinds (vanishing, alignment, point-group, all), environments (Td, Oh, D3h, C3v, C2v, D4h, "
                        "Cinfv, Dinfh) and files of sample rows; 'none' skips the report (default: all)")
    if flexible:
        p.add_argument("--flexible", action="store_true",
                       help="select a set that is complete generically AND reaches the maximum achievable rank on "
                            "every stratum, with the fewest invariants, then the lowest cost")
        p.add_argument("--search-nodes", type=nonnegative_int, default=DEFAULT_NODES,
                       help="budget of the exhaustive part of the flexible search, in search nodes (a budget, not a "
                            f"clock, so results are reproducible; default {DEFAULT_NODES})")


#: Where ``--json -`` writes: the real stdout, while the human-readable output goes to stderr (see ``main``).
JSON_STDOUT: dict = {"stream": None}


def write_json(target: str, data) -> None:
    """Write JSON to a path, or to stdout for ``-``."""
    write_json_text(target, json.dumps(data, indent=2) + "\n")


def write_json_text(target: str, text: str) -> None:
    """``--json``: to stdout for ``-`` (nothing else is printed there), else to the path, saying so."""
    if target == "-":
        stream = JSON_STDOUT["stream"] or sys.stdout
        stream.write(text)
        stream.flush()
    else:
        try:
            Path(target).write_text(text)
        except OSError as exc:
            raise OptinvError(f"--json: cannot write {target!r}: {exc.strerror or exc}") from None
        print(f"wrote {target}")


