"""The driver: :func:`verify_module` checks integrity first, then runs the chosen properties on the chosen backends.

Order matters for safety.  Integrity (:mod:`.integrity`) reads the package as
bytes and compares it with what the installed optinv regenerates from the
recorded request; nothing from the package runs before that verdict.  Only
when it passes is the module imported, and then from a private copy of the
verified bytes (sources only, no bytecode); when it fails, every other
property is SKIP and nothing from the package is executed at all.
"""

from __future__ import annotations

import time

from optinv.algebra.errors import OptinvError
from optinv.algebra.signature import Signature
from optinv.verify.backends import parse_backends
from optinv.verify.integrity import check_integrity, package_entries, read_metadata, verified_copy

from optinv.verify.loading import load_fresh, resolve_module_path
from optinv.verify.properties import (DEFAULT_MAX_EXAMPLES, Context, check_derivatives, check_invariance,
                                      check_rank, check_reference, parse_properties)
from optinv.verify.report import PropertyResult, VerifyReport


def verify_module(
    path,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int = 0,
    backends=None,
    properties=None,
    progress=None,
    run_unverified: bool = False,
) -> VerifyReport:
    """Check a generated module's properties with property-based tests, trusting none of its code.

    Integrity is always checked first, without executing anything from the
    package: every file must be byte-identical to what the installed optinv
    regenerates from the recorded request, with no other files and no
    symbolic links.  Only then is the module imported (from a private copy of
    the verified files, sources only) and the other properties run; if it
    fails, they are SKIP and the integrity line is reported even when not asked for.

    Parameters
    ----------
    path : str or path-like
        The module's directory (or its ``metadata.json``), or the name of a
        committed module (``"hop_l3_n4"``; a bare committed name means the
        committed module even if a folder of that name is in the working
        directory: give ``./hop_l3_n4`` for the folder).
    max_examples : int
        Hypothesis examples per property and backend.
    seed : int
        Seed of the examples: the same seed and ``max_examples`` give the same run.
    backends : str or list of str, optional
        Backend names (``"c-f64"``) or kinds (``"c"``, ``"torch"``, ``"cuda"``) from
        the target registry; default all.  Unavailable ones are reported as SKIP.
    properties : str or list of str, optional
        A subset of ``invariance, reference, derivatives, rank, integrity``; default all.
    progress : callable, optional
        Called with the header line (a string), then with each
        :class:`~optinv.verify.report.PropertyResult` as it is found.
    run_unverified : bool
        Run the other properties even when integrity fails, importing the
        package's own files (regular files only, from a private copy, sources
        only): this *executes the package's code*, so only for a package you
        wrote yourself (developing a target, testing the checks).  The report
        still fails on integrity.  ``optinv verify --run-unverified``.

    Returns
    -------
    VerifyReport
        ``report.ok`` is True when nothing failed; ``report.report()`` is the text
        ``optinv verify`` prints.

    Raises
    ------
    OptinvError
        No module at ``path``, a malformed ``metadata.json``, or bad arguments.

    Examples
    --------
    >>> report = verify_module("hop_l1_n2", max_examples=3, backends="c-f64", properties="reference,rank")
    >>> report.ok, [(r.property, r.status) for r in report.results]
    (True, [('reference', 'PASS'), ('rank', 'PASS')])
    """
    if not isinstance(max_examples, int) or isinstance(max_examples, bool) or max_examples < 1:
        raise OptinvError(f"--max-examples: expected an integer >= 1, got {max_examples!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise OptinvError(f"--seed: expected an integer >= 0, got {seed!r}")
    chosen = parse_backends(backends)
    props = parse_properties(properties)
    start = time.perf_counter()
    where = resolve_module_path(path)
    meta = read_metadata(where)
    try:
        signature = Signature.from_dict(meta["signature"]).describe()
    except Exception:  # noqa: BLE001 - integrity reports what is wrong; the header just says '?'
        signature = "?"
    report = VerifyReport(module=meta["name"], path=str(where), signature=signature, K=meta["K"], seed=seed,
                          max_examples=max_examples)
    if progress:
        progress(report.header())

    def record(prop, backend, fn):
        t0 = time.perf_counter()
        try:
            status, n, message, ce = fn()
        except Exception as exc:  # noqa: BLE001 - a crash is a failure of that property, not of verify
            status, n, message, ce = "FAIL", 0, f"{type(exc).__name__}: {exc}", None
        result = PropertyResult(prop, backend, status, n, message, ce, round(time.perf_counter() - t0, 3))
        report.results.append(result)
        if progress:
            progress(result)

    verdict = check_integrity(where, meta)  # first, and nothing from the package runs
    if "integrity" in props or not verdict.ok:
        record("integrity", "-", lambda: ("PASS" if verdict.ok else "FAIL", 0, verdict.message, None))
    files = verdict.files
    if not verdict.ok and run_unverified:
        regular, _, _ = package_entries(where)
        files = {name: p.read_bytes() for name, p in regular.items() if "/" not in name}
    elif not verdict.ok:
        why = "not run: integrity failed, so nothing from the package is executed"
        for prop in props:
            if prop != "integrity":
                for name in ([b.name for b in chosen] if prop in ("invariance", "reference", "derivatives")
                             else ["-"]):
                    record(prop, name, lambda: ("SKIP", 0, why, None))
        report.seconds = round(time.perf_counter() - start, 3)
        return report

    with verified_copy(files, meta["name"]) as copy:
        module = load_fresh(copy, meta["name"])
        if hasattr(module, "set_num_threads"):
            module.set_num_threads(1)  # batches here are small: OpenMP start-up would dominate (this import only)
        ctx = Context(copy, module)
        checks = {"invariance": check_invariance, "reference": check_reference, "derivatives": check_derivatives}
        for prop in props:
            if prop in checks:
                for b in chosen:
                    why = b.unavailable()
                    if why:
                        record(prop, b.name, lambda why=why: ("SKIP", 0, why, None))
                    else:
                        record(prop, b.name, lambda b=b, prop=prop: checks[prop](ctx, b, max_examples, seed))
            elif prop == "rank":
                record(prop, "-", lambda: check_rank(ctx, max_examples, seed))
    report.seconds = round(time.perf_counter() - start, 3)
    return report
