"""Work estimated before it starts: requests out of reach are refused with a hint; long work shows progress.

The estimates are deliberately simple and conservative (counts of what the
engine would enumerate), so a refusal always comes in well under a second.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import sys
import threading
import time
from pathlib import Path

from optinv.algebra.errors import OptinvError

#: The most factors per invariant a search takes: candidates grow super-exponentially with the degree
#: (``--tensors a:3``: n_max 6 takes 2.5 s, n_max 8 over a minute), and 4 to 6 reach the bound in every
#: setting of the README's table.
MAX_N_MAX = 12
#: The most products of channel tensors (multisets of up to nu_max of the n_rad * (l_max + 1) tensors)
#: ``optinv ace`` enumerates; the default table needs 46,375.
MAX_ACE_PRODUCTS = 1_000_000


def check_n_max(n_max: int | None, flag: str = "--n-max") -> None:
    if n_max is not None and n_max > MAX_N_MAX:
        raise OptinvError(
            f"{flag}: {n_max} factors per invariant is out of reach (candidates grow super-exponentially with the "
            f"number of factors; the limit is {MAX_N_MAX}); the bound is usually reached with 4 to 6: start there "
            f"(`optinv table` shows where)")


def ace_products(n_rad: int, l_max: int, nu_max: int) -> int:
    """How many products of channel tensors ``optinv ace`` enumerates: multisets of size 1..nu_max."""
    tensors = n_rad * (l_max + 1)
    return sum(math.comb(tensors + nu - 1, nu) for nu in range(1, nu_max + 1))


def check_ace(n_rad: int, l_max: int, nu_max: int) -> None:
    work = ace_products(n_rad, l_max, nu_max)
    if work > MAX_ACE_PRODUCTS:
        raise OptinvError(
            f"--n-rad {n_rad} --l-max {l_max} --nu-max {nu_max}: {work:.3g} products of channel tensors to enumerate, "
            f"out of reach (limit {MAX_ACE_PRODUCTS:,}); try --n-rad {largest_n_rad(l_max, nu_max)} or less, or a "
            f"smaller --nu-max")


def largest_n_rad(l_max: int, nu_max: int) -> int:
    n = 1
    while ace_products(n + 1, l_max, nu_max) <= MAX_ACE_PRODUCTS:
        n += 1
    return n


@contextlib.contextmanager
def heartbeat(what: str, enabled: bool = True, every: float = 10.0):
    """While the block runs, print ``still <what> (Ns)`` on stderr every ``every`` seconds."""
    if not enabled:
        yield
        return
    done = threading.Event()
    start = time.perf_counter()

    def beat():
        while not done.wait(every):
            print(f"[{time.perf_counter() - start:7.1f}s] still {what} ...", file=sys.stderr, flush=True)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def shadows_a_module(name: str, out_dir) -> str | None:
    """Where an importable top-level module of this name lives (a package named so would shadow it), or None."""
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        return "the standard library"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    origin = spec.origin or (list(spec.submodule_search_locations or [""])[0])
    mine = (Path(out_dir) / name).resolve()
    if origin and Path(origin).resolve().is_relative_to(mine):
        return None  # the package we are about to rewrite, importable from here
    return origin or "an installed package"
