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
    monkeypatch.setattr(native, "_RETURNED_BYTES", [0])
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


def _pooled(a: np.ndarray) -> bool:
    base = a.base
    while base is not None:
        if isinstance(base, native._Holder):
            return True
        base = getattr(base, "base", None)
    return False


def test_pool_can_be_switched_off(monkeypatch):
    first = native.aligned_empty(N_LARGE, 13, np.float32)
    assert _pooled(first)  # the check below can fail
    del first
    gc.collect()
    native.release_output_pool()
    monkeypatch.setattr(native, "POOL_MAX_BYTES", 0)
    a = native.aligned_empty(N_LARGE, 13, np.float32)
    assert a.ctypes.data % 64 == 0 and not _pooled(a)
    del a
    gc.collect()
    assert native._POOL == [] and len(native._RETURNED) == 0


def test_idle_memory_stays_within_the_cap_without_another_call(monkeypatch):
    """Many large outputs dropped at once: what the pool keeps never passes the cap, even before any later call."""
    size = -(-N_LARGE * 13 * 4 // native._HUGE_PAGE) * native._HUGE_PAGE
    monkeypatch.setattr(native, "POOL_MAX_BYTES", 3 * size)
    outputs = [native.aligned_empty(N_LARGE, 13, np.float32) for _ in range(10)]
    del outputs
    gc.collect()
    assert native._POOL_HELD[0] + native._RETURNED_BYTES[0] <= 3 * size
    assert native.release_output_pool() == 3 * size
    assert native._POOL == [] and native._POOL_HELD[0] == 0 and native._RETURNED_BYTES[0] == 0


def test_release_while_the_pool_lock_is_held_queues_within_the_cap(monkeypatch):
    """__del__ never waits for the lock (it may run inside an allocation holding it): it queues, bounded."""
    size = -(-N_LARGE * 13 * 4 // native._HUGE_PAGE) * native._HUGE_PAGE
    monkeypatch.setattr(native, "POOL_MAX_BYTES", 2 * size)
    outputs = [native.aligned_empty(N_LARGE, 13, np.float32) for _ in range(5)]
    with native._POOL_LOCK:
        del outputs
        gc.collect()
        assert len(native._RETURNED) == 2 and native._RETURNED_BYTES[0] == 2 * size
    again = native.aligned_empty(N_LARGE, 13, np.float32)  # moves the queue into the pool and reuses one
    assert native._POOL_HELD[0] == size and len(native._RETURNED) == 0
    assert again.shape == (N_LARGE, 13)


@pytest.mark.parametrize("text,expected", [("", 512 << 20), ("0", 0), ("-5", 0), ("1048576", 1 << 20),
                                           ("64M", 64 << 20), ("2g", 2 << 30), ("  8K ", 8 << 10)])
def test_pool_size_from_the_environment(monkeypatch, text, expected):
    monkeypatch.setenv("OPTINV_POOL_BYTES", text)
    assert native._pool_bytes_from_env() == expected


@pytest.mark.parametrize("text", ["abc", "1e9", "12X", "M"])
def test_a_bad_pool_size_warns_by_name_and_keeps_the_default(monkeypatch, text):
    monkeypatch.setenv("OPTINV_POOL_BYTES", text)
    with pytest.warns(RuntimeWarning, match="OPTINV_POOL_BYTES"):
        assert native._pool_bytes_from_env() == 512 << 20


def test_refused_huge_page_advice_is_not_an_error(monkeypatch):
    import mmap

    monkeypatch.setattr(mmap, "MADV_HUGEPAGE", 987654, raising=False)  # the kernel answers EINVAL
    a = native.aligned_empty(N_LARGE, 13, np.float32)
    a[:] = 1.0
    assert float(a.sum()) == N_LARGE * 13


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


def test_a_torch_tensor_keeps_its_memory_out_of_the_pool():
    torch = pytest.importorskip("torch")
    a = native.aligned_empty(N_LARGE, 13, np.float32)
    a[:] = 3.0
    t = torch.from_numpy(a)
    start, nbytes = t.data_ptr(), t.numel() * t.element_size()
    del a
    gc.collect()
    for _ in range(3):
        o = native.aligned_empty(N_LARGE, 13, np.float32)
        assert o.ctypes.data + o.nbytes <= start or o.ctypes.data >= start + nbytes
        o[:] = -1.0
    assert bool((t == 3.0).all())
