"""The driver: :func:`verify_module` runs the chosen properties on the chosen backends."""

from __future__ import annotations

import json
import time
from pathlib import Path

from optinv.algebra.errors import OptinvError
from optinv.algebra.signature import Signature
from optinv.verify.backends import parse_backends
from optinv.verify.integrity import check_integrity, edited_python_files
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
) -> VerifyReport:
    """Check a generated module's properties with property-based tests, trusting none of its code.

    Parameters
    ----------
    path : str or path-like
        The module's directory (or its ``metadata.json``), or the name of a
        committed module (``"hop_l3_n4"``).
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

    Returns
    -------
    VerifyReport
        ``report.ok`` is True when nothing failed; ``report.report()`` is the text
        ``optinv verify`` prints.

    Raises
    ------
    OptinvError
        No module at ``path``, or bad arguments.

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
    edited = edited_python_files(where)
    if edited:  # importing would run code nobody generated: report integrity, run nothing else
        return edited_report(where, edited, props, chosen, seed, max_examples, start, progress)
    module = load_fresh(where)
    if hasattr(module, "set_num_threads"):
        module.set_num_threads(1)  # batches here are small: OpenMP start-up would dominate (this import only)
    ctx = Context(where, module)
    report = VerifyReport(module=ctx.meta.get("name", where.name), path=str(where), signature=ctx.sig.describe(),
                          K=ctx.K, seed=seed, max_examples=max_examples)
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
        else:
            record(prop, "-", lambda: check_integrity(ctx))
    report.seconds = round(time.perf_counter() - start, 3)
    return report



def edited_report(where: Path, edited, props, chosen, seed, max_examples, start, progress) -> VerifyReport:
    meta = json.loads((where / "metadata.json").read_text())
    try:
        signature = Signature.from_dict(meta["signature"]).describe()
    except (KeyError, TypeError, ValueError):
        signature = "?"
    report = VerifyReport(module=meta.get("name", where.name), path=str(where), signature=signature,
                          K=int(meta.get("K", 0)), seed=seed, max_examples=max_examples)
    if progress:
        progress(report.header())
    why = "not run: the package's Python code was edited, so verify does not import it"
    for prop in props:
        if prop == "integrity":
            result = PropertyResult(prop, "-", "FAIL", 0, f"{', '.join(edited)} do(es) not match the sha256 in "
                                    "metadata.json (edited?); regenerate with `optinv compile`", None, 0.0)
        else:
            backends = [b.name for b in chosen] if prop in ("invariance", "reference", "derivatives") else ["-"]
            for name in backends[:-1]:
                report.results.append(PropertyResult(prop, name, "SKIP", 0, why, None, 0.0))
            result = PropertyResult(prop, backends[-1], "SKIP", 0, why, None, 0.0)
        report.results.append(result)
    if progress:
        for r in report.results:
            progress(r)
    report.seconds = round(time.perf_counter() - start, 3)
    return report
