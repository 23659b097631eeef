"""The C kernels' register shuffles (codegen/simd.py) and their streaming stores.

The plans are checked here by executing them on numbers with NumPy (an
independent executor: the module checks itself on labels), and the kernels'
streaming path against the same kernels writing with plain stores.
"""

from __future__ import annotations

import ctypes
import importlib

import numpy as np
import pytest

from optinv.codegen import simd
from optinv.codegen.runtime import native


def run_shuffle(vectors: dict[str, np.ndarray], s: simd.Shuffle) -> np.ndarray:
    return np.concatenate([vectors[s.a], vectors[s.b]])[list(s.index)]


@pytest.mark.parametrize("lanes", [8, 16])
def test_transpose_plan_transposes_a_tile(lanes):
    tile = np.arange(lanes * lanes, dtype=float).reshape(lanes, lanes) * 1.5 + 7
    vecs = [tile[r].copy() for r in range(lanes)]
    stages = simd.transpose_stages(lanes)
    assert len(stages) == {8: 3, 16: 4}[lanes]  # log2(lanes) stages of `lanes` shuffles: no more than the minimum
    for stage in stages:
        assert sorted(dst for dst, *_ in stage) == list(range(lanes))
        new = {dst: np.concatenate([vecs[a], vecs[b]])[list(index)] for dst, a, b, index in stage}
        vecs = [new[i] for i in range(lanes)]
    np.testing.assert_array_equal(np.array(vecs), tile.T)


def test_transpose_uses_only_in_block_unpacks_and_block_shuffles():
    """The cheap shapes: lane l of an unpack stays in its 128-bit block; block stages move whole blocks."""
    for lanes, per_block in ((16, 4), (8, 2)):
        *unpacks, first, second = simd.transpose_stages(lanes)
        for stage in unpacks:
            for _, _, _, index in stage:
                assert all((i % lanes) // per_block == l // per_block for l, i in enumerate(index))
        for stage in (first, second):
            for _, _, _, index in stage:
                blocks = [index[k:k + per_block] for k in range(0, lanes, per_block)]
                assert all(list(b) == list(range(b[0], b[0] + per_block)) and b[0] % per_block == 0 for b in blocks)


def test_bad_lane_count():
    with pytest.raises(ValueError, match="lanes must be 8 or 16"):
        simd.transpose_stages(4)


@pytest.mark.parametrize("lanes", [8, 16])
@pytest.mark.parametrize("width", list(range(1, 35)) + [40, 48, 61])
def test_pack_plan_packs_rows_in_order(lanes, width):
    """Columns of a block (one output per vector, one row per lane) -> the row-major block, vector by vector."""
    rng = np.random.default_rng(width)
    block = rng.normal(size=(lanes, width))  # block[row, col]
    plan = simd.pack_plan(lanes, width)
    chunks = -(-width // lanes)
    regs: dict[str, np.ndarray] = {}
    for c in range(chunks):
        cols = np.zeros((lanes, lanes))  # cols[j] = column c*lanes + j (zero beyond width)
        cols[: min(lanes, width - c * lanes)] = block[:, c * lanes: (c + 1) * lanes].T
        vectors = cols.T if plan.transpose else cols  # a transposed chunk holds rows
        for j in range(lanes):
            regs[f"out_{c}_{j}"] = vectors[j]
    for s in plan.shuffles:
        regs[s.dst] = run_shuffle(regs, s)
    packed = np.concatenate([regs[v] for v in plan.packed])
    np.testing.assert_array_equal(packed, block.reshape(-1))
    # never worse than either alternative, and a width that is a multiple of the lanes costs no shuffle
    if width % lanes == 0:
        assert plan.shuffles == [] and plan.transpose
    assert plan.cost <= chunks * lanes * len(simd.transpose_stages(lanes)) + 3 * width


def _library(module):
    lib = native.load_verified(module._c.source)
    return lib


def _aligned(n, width, dtype, misalign_bytes=0):
    raw = np.empty(n * width * np.dtype(dtype).itemsize + 128, dtype=np.uint8)
    start = (-raw.ctypes.data % 64) + misalign_bytes
    return raw[start:start + n * width * np.dtype(dtype).itemsize].view(dtype).reshape(n, width)


def test_outputs_we_allocate_are_64_byte_aligned():
    module = importlib.import_module("optinv.generated.hop_l3_n4")
    for n in (native.ALIGN_MIN_BYTES // (4 * module.K) + 1, 100_000, 1_000_000):
        x = np.random.default_rng(n).normal(size=(n, module.D))
        out = module.forward(x.astype(np.float32))
        assert out.ctypes.data % 64 == 0 and out.flags.c_contiguous and out.shape == (n, module.K)


@pytest.mark.parametrize("name,kernel", [("hop_l3_n4", "forward"), ("hop_l3_n4", "vjp"), ("hop_l1_n2", "forward"),
                                         ("flex_l4_n4", "forward")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_streaming_stores_equal_plain_stores(name, kernel, dtype):
    """One call past the streaming threshold equals the same rows done in small calls.

    Small calls stay below the threshold and store plainly.  A misaligned output streams from its first
    row that starts a cache line, after a head of rows through the tail path (for NumPy's 16-byte
    alignment, and for an element's offset, where some row starts a line), or stores plainly where none
    does.  Threads 1 and 2, and a row count that leaves a tail, so blocks are split over threads and the
    padded tail is stored.
    """
    module = importlib.import_module(f"optinv.generated.{name}")
    lib = _library(module)
    lib.optinv_stream_bytes.restype = ctypes.c_int64
    threshold = lib.optinv_stream_bytes()
    if threshold < 0:
        pytest.skip("this build has no streaming stores (not x86 with AVX, or not GCC/Clang)")
    assert threshold == native.stream_threshold_bytes()  # the build passes this CPU's threshold
    assert threshold >= native.ALIGN_MIN_BYTES  # every output that may stream is allocated aligned
    spec = module._c.kernels[kernel]
    width = spec["width"]
    item = np.dtype(dtype).itemsize
    n = threshold // (width * item) + 77  # just past the threshold, not a multiple of the lanes
    rng = np.random.default_rng(5)
    args = [rng.normal(size=(n, w)).astype(dtype) for _, w in spec["args"]]
    step = 4099
    expected = np.concatenate([module._c(kernel, *(a[i:i + step] for a in args), threads=1)
                               for i in range(0, n, step)])
    for threads in (1, 2):
        for misalign in (0, item, 16, 48):
            out = _aligned(n, width, dtype, misalign)
            module._c(kernel, *args, out=out, threads=threads)
            np.testing.assert_array_equal(out, expected, err_msg=f"threads={threads} misalign={misalign}")
