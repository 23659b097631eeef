"""Large outputs come from reused memory: no fresh pages per call, and never memory still in use."""

from __future__ import annotations

import collections
import gc
import importlib
import threading

import numpy as np
import pytest

from optinv.codegen.runtime import native

pytestmark = pytest.mark.skipif(not native._CAN_POOL, reason="no private anonymous mmap on this platform")

N_LARGE = native.POOL_MIN_BYTES // (13 * 4) + 100  # a (3,4) float32 forward output just above the pool size


@pytest.fixture(autouse=True)
def empty_pool(monkeypatch):
    """Each test starts from an empty pool of its own (the pool is process-wide)."""
    monkeypatch.setattr(native, "_POOL", [])
    monkeypatch.setattr(native, "_RETURNED", collections.deque())
    monkeypatch.setattr(native, "_POOL_HELD", [0])


def test_released_output_memory_is_reused_and_aligned():
    a = native.aligned_empty(N_LARGE, 13, np.float32)
    assert a.ctypes.data % 64 == 0 and a.flags.c_contiguous and a.flags.writeable and a.shape == (N_LARGE, 13)
    address = a.ctypes.data
    del a
    gc.collect()
    b = native.aligned_empty(N_LARGE, 13, np.float32)
    assert b.ctypes.data == address  # the same pages, already faulted in


def test_a_live_view_keeps_its_memory_out_of_the_pool():
    a = native.aligned_empty(N_LARGE, 13, np.float32)
    a[:] = 1.0
    view = a[5:9]
    del a
    gc.collect()
    others = [native.aligned_empty(N_LARGE, 13, np.float32) for _ in range(3)]
    for o in others:
        assert not np.shares_memory(o, view)
        o[:] = -2.0
    np.testing.assert_array_equal(view, 1.0)


def test_the_pool_holds_at_most_its_cap_and_keeps_the_latest(monkeypatch):
    size_of = lambda n: -(-n * 13 * 4 // native._HUGE_PAGE) * native._HUGE_PAGE  # noqa: E731
    sizes = [N_LARGE + i * 100_000 for i in range(8)]  # eight different size classes
    monkeypatch.setattr(native, "POOL_MAX_BYTES", size_of(sizes[-1]) + size_of(sizes[-2]))
    for n in sizes:  # released one after the other
        a = native.aligned_empty(n, 13, np.float32)
        del a
        gc.collect()
    native.aligned_empty(1, 13, np.float32)  # too small for the pool: the next pooled allocation trims
    probe = native.aligned_empty(sizes[-1], 13, np.float32)  # drains and trims, then reuses the latest
    assert native._POOL_HELD[0] <= native.POOL_MAX_BYTES
    assert sum(size for size, _ in native._POOL) == native._POOL_HELD[0]
    assert [size for size, _ in native._POOL] == [size_of(sizes[-2])]  # the older classes were dropped
    assert probe.shape == (sizes[-1], 13)


def test_pool_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(native, "POOL_MAX_BYTES", 0)
    a = native.aligned_empty(N_LARGE, 13, np.float32)
    assert a.ctypes.data % 64 == 0 and not isinstance(a.base, native._Holder)


def test_threads_never_share_live_outputs():
    live: list[np.ndarray] = []
    lock = threading.Lock()
    errors: list[str] = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(20):
            n = N_LARGE + int(rng.integers(0, 3)) * 40_000
            a = native.aligned_empty(n, 13, np.float32)
            a[:2] = seed
            with lock:
                if any(np.shares_memory(a, b) for b in live):
                    errors.append("two live outputs share memory")
                live.append(a)
                if len(live) > 6:
                    live.pop(0)
            if not (a[:2] == seed).all():
                errors.append("an output was overwritten by another thread")

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_kernels_write_pooled_outputs_correctly():
    """Reused memory holds an old output: the kernel must overwrite all of it (values vs small calls)."""
    module = importlib.import_module("optinv.generated.hop_l3_n4")
    x = np.random.default_rng(0).normal(size=(N_LARGE, module.D)).astype(np.float32)
    first = module.forward(x)
    first[:] = np.nan
    del first
    gc.collect()
    again = module.forward(x)
    expected = np.concatenate([module.forward(x[i:i + 5000]) for i in range(0, N_LARGE, 5000)])
    np.testing.assert_array_equal(again, expected)
