"""Register-tile shuffles for the C kernels: moving rows into columns and back inside 512-bit vectors.

The C kernels hold one row per vector lane (16 floats or 8 doubles per 64-byte
vector), so a block of rows must be turned into one vector per column on the
way in, and the outputs back into rows on the way out.  This module plans those
moves as two-source shuffles with constant lane indices (``SHUFFLE(a, b, i...)``,
where index ``i < lanes`` picks lane ``i`` of ``a`` and ``i >= lanes`` lane
``i - lanes`` of ``b``), and simulates every plan it returns, so a wrong index
fails here, at generation time, not in a kernel.

Why these shapes (measured on AVX-512, (3,4) float32 forward, 1 thread):

- The transpose uses the classic unpack/shuffle stages (32-bit and 64-bit
  interleaves inside 128-bit blocks, then two 128-bit block stages), which
  compile to ``vunpck*``/``vshufps``/``vshuff32x4``.  The earlier bit-swap
  stages compiled half of their shuffles to ``vpermt2ps``, a slower
  two-source permute; the same 64 shuffles are now 8-10% faster.
- Outputs are packed into whole vectors of consecutive output elements, so a
  block is written with ``width`` full, non-overlapping vector stores, which
  may be non-temporal (streaming) stores; a width that is not a multiple of
  the lanes costs one to three extra shuffles per vector.  Narrow outputs are
  packed straight from the column vectors when that takes fewer shuffles than
  a transpose.
"""

from __future__ import annotations

from dataclasses import dataclass

LANES = {"float": 16, "double": 8}
_BLOCK_BYTES = 16  # the unpack instructions work inside 128-bit blocks


@dataclass(frozen=True)
class Shuffle:
    """``dst = SHUFFLE(a, b, index...)``: lane ``l`` of dst is lane ``index[l]`` of ``a ++ b``."""

    dst: str
    a: str
    b: str
    index: tuple[int, ...]


def _blockwise(lanes: int, per_block: int, pattern) -> tuple[int, ...]:
    return tuple(i for q in range(lanes // per_block) for i in pattern(q * per_block))


def _patterns(lanes: int) -> dict[str, tuple[int, ...]]:
    per_block = {16: 4, 8: 2}[lanes]
    L = lanes
    p: dict[str, tuple[int, ...]] = {}
    if L == 16:
        p["lo32"] = _blockwise(L, 4, lambda b: (b, L + b, b + 1, L + b + 1))
        p["hi32"] = _blockwise(L, 4, lambda b: (b + 2, L + b + 2, b + 3, L + b + 3))
        p["lo64"] = _blockwise(L, 4, lambda b: (b, b + 1, L + b, L + b + 1))
        p["hi64"] = _blockwise(L, 4, lambda b: (b + 2, b + 3, L + b + 2, L + b + 3))
    else:
        p["lo64"] = _blockwise(L, 2, lambda b: (b, L + b))
        p["hi64"] = _blockwise(L, 2, lambda b: (b + 1, L + b + 1))

    def blocks(a0: int, a1: int, b0: int, b1: int) -> tuple[int, ...]:
        # 128-bit blocks a0, a1 of the first source, then b0, b1 of the second
        return tuple(i for blk, src in ((a0, 0), (a1, 0), (b0, L), (b1, L))
                     for i in range(src + blk * per_block, src + (blk + 1) * per_block))

    p["even128"] = blocks(0, 2, 0, 2)
    p["odd128"] = blocks(1, 3, 1, 3)
    return p


def transpose_stages(lanes: int) -> list[list[tuple[int, int, int, tuple[int, ...]]]]:
    """Stages of ``(dst, a, b, index)`` over vectors ``0..lanes-1`` that transpose a lanes x lanes tile.

    Within a stage every source is read before any destination is written
    (the template keeps each stage's results in temporaries).
    """
    if lanes not in (8, 16):
        raise ValueError(f"lanes must be 8 or 16, got {lanes}")
    p = _patterns(lanes)
    stages = []
    if lanes == 16:
        # rows (2p, 2p+1) interleaved by 32 bits, then groups of four rows by 64 bits: afterwards
        # vector 4g + c holds, in 128-bit block q, column 4q + c of rows 4g..4g+3
        stages.append([(2 * i + h, 2 * i, 2 * i + 1, p["hi32" if h else "lo32"]) for i in range(8) for h in (0, 1)])
        stage = []
        for g in range(4):
            v = 4 * g
            stage += [(v, v, v + 2, p["lo64"]), (v + 1, v, v + 2, p["hi64"]),
                      (v + 2, v + 1, v + 3, p["lo64"]), (v + 3, v + 1, v + 3, p["hi64"])]
        stages.append(stage)
        per_block = 4
    else:
        # pairs of rows interleaved by 64 bits: vector 2g + c holds, in block q, column 2q + c of rows 2g, 2g+1
        stages.append([(2 * i + h, 2 * i, 2 * i + 1, p["hi64" if h else "lo64"]) for i in range(4) for h in (0, 1)])
        per_block = 2
    # a 4x4 transpose of 128-bit blocks among the vectors c, c + per_block, c + 2 per_block, c + 3 per_block
    first, second = [], []
    for c in range(per_block):
        v = [c + k * per_block for k in range(4)]
        first += [(v[0], v[0], v[1], p["even128"]), (v[1], v[0], v[1], p["odd128"]),
                  (v[2], v[2], v[3], p["even128"]), (v[3], v[2], v[3], p["odd128"])]
        second += [(c, v[0], v[2], p["even128"]), (2 * per_block + c, v[0], v[2], p["odd128"]),
                   (per_block + c, v[1], v[3], p["even128"]), (3 * per_block + c, v[1], v[3], p["odd128"])]
    stages += [first, second]
    _check_transpose(lanes, stages)
    return stages


def _check_transpose(lanes: int, stages) -> None:
    tile = [[(r, j) for j in range(lanes)] for r in range(lanes)]
    for stage in stages:
        new: list = [None] * lanes
        for dst, a, b, index in stage:
            both = tile[a] + tile[b]
            if new[dst] is not None:
                raise AssertionError("a transpose stage writes one vector twice")
            new[dst] = [both[i] for i in index]
        tile = new
    if any(tile[j][r] != (r, j) for j in range(lanes) for r in range(lanes)):
        raise AssertionError(f"transpose plan for {lanes} lanes is wrong")


def _chain(dst: str, lanes_from: list[tuple[str, int]], prefix: str) -> list[Shuffle]:
    """Shuffles that build ``dst`` lane by lane from ``(vector, lane)`` sources, two sources at a time."""
    L = len(lanes_from)
    order: list[str] = []
    for vec, _ in lanes_from:
        if vec not in order:
            order.append(vec)
    if len(order) == 1:
        index = tuple(lane for _, lane in lanes_from)
        return [Shuffle(dst, order[0], order[0], index)]
    out: list[Shuffle] = []
    acc = order[0]
    filled = {l for l, (vec, _) in enumerate(lanes_from) if vec == order[0]}
    for step, vec in enumerate(order[1:], start=1):
        index = []
        for l, (src, lane) in enumerate(lanes_from):
            if src == vec:
                index.append(L + lane)
            elif l in filled and acc == order[0]:
                index.append(lane)  # still reading the first source directly
            elif l in filled:
                index.append(l)  # already in place in the accumulator
            else:
                index.append(0)  # filled by a later source
        name = dst if step == len(order) - 1 else f"{prefix}{step}"
        out.append(Shuffle(name, acc, vec, tuple(index)))
        filled |= {l for l, (src, _) in enumerate(lanes_from) if src == vec}
        acc = name
    return out


@dataclass(frozen=True)
class PackPlan:
    """How a block's output columns become ``width`` packed vectors of consecutive output elements."""

    transpose: bool  # True: transpose each chunk of ``lanes`` columns to rows first
    shuffles: list[Shuffle]
    packed: list[str]  # the vector holding output elements v*lanes .. v*lanes + lanes - 1
    transpose_shuffles: int  # shuffles the transposes take (0 when packing straight from columns)

    @property
    def cost(self) -> int:
        """Shuffles issued in all."""
        return len(self.shuffles) + self.transpose_shuffles


def _identity(s: Shuffle) -> bool:
    return s.a == s.b and s.index == tuple(range(len(s.index)))


def pack_plan(lanes: int, width: int, column: str = "out_{c}_{j}", name: str = "packed{v}") -> PackPlan:
    """Plan for turning ``width`` column vectors (one output each, one row per lane) into packed vectors.

    ``column.format(c=chunk, j=lane_in_chunk)`` names column ``c * lanes + j``; after a transpose the
    same names hold rows (vector ``out_{c}_{r}`` = row ``r``, columns ``c*lanes .. c*lanes+lanes-1``).
    Of the direct and the transposed plan, the one with fewer shuffles is returned.
    """
    L, W = lanes, width
    chunks = (W + L - 1) // L

    def plan(transposed: bool) -> PackPlan:
        shuffles: list[Shuffle] = []
        packed: list[str] = []
        for v in range(W):
            sources = []
            for e in range(v * L, v * L + L):
                row, col = divmod(e, W)
                if transposed:
                    sources.append((column.format(c=col // L, j=row), col % L))
                else:
                    sources.append((column.format(c=col // L, j=col % L), row))
            dst = name.format(v=v)
            chain = _chain(dst, sources, prefix=f"{dst}_")
            if len(chain) == 1 and _identity(chain[0]):
                packed.append(chain[0].a)  # already a packed vector: no shuffle, no copy
                continue
            shuffles += chain
            packed.append(dst)
        stages = len(transpose_stages(L))
        return PackPlan(transposed, shuffles, packed, chunks * L * stages if transposed else 0)

    direct, transposed = plan(False), plan(True)
    best = direct if direct.cost < transposed.cost else transposed
    check_pack(L, W, best, column)
    return best


def check_pack(lanes: int, width: int, plan: PackPlan, column: str = "out_{c}_{j}") -> None:
    """Simulate ``plan`` on labelled lanes and raise unless packed vector v holds elements v*lanes.. in order."""
    L, W = lanes, width
    chunks = (W + L - 1) // L
    regs: dict[str, list] = {}
    for c in range(chunks):
        for j in range(L):
            col = c * L + j
            if plan.transpose:  # after the transpose, vector (c, r) is row r's chunk c
                regs[column.format(c=c, j=j)] = [(j, c * L + k) if c * L + k < W else None for k in range(L)]
            else:
                regs[column.format(c=c, j=j)] = [(r, col) if col < W else None for r in range(L)]
    for s in plan.shuffles:
        both = regs[s.a] + regs[s.b]
        regs[s.dst] = [both[i] for i in s.index]
    for v, vec in enumerate(plan.packed):
        want = [divmod(e, W) for e in range(v * L, v * L + L)]
        if regs[vec] != want:
            raise AssertionError(f"packed vector {v} of width {W} with {L} lanes is wrong: {regs[vec]} != {want}")
