"""Exact arithmetic modulo a prime: tensor contraction, rank and row echelon form.

Every exact statement optinv makes (rank certificates, orbit bounds, linear
spans, orientations of einsum strings) is computed here, on int64 residues
modulo :data:`PRIME`.  A residue is below ``2**24``, so a product fits 48 bits
and :data:`CHUNK` products can be summed before reducing without overflow.

>>> import numpy as np
>>> a = np.arange(9).reshape(3, 3)
>>> contract_mod(["ij", "jk"], "ik", [a, a]).tolist() == (a @ a).tolist()
True
>>> modular_rank(np.array([[1, 2, 3], [2, 4, 6], [0, 1, 1]]))
2
"""

from __future__ import annotations

import numpy as np

from optinv.algebra.cartesian import tensors_of_rows
from optinv.algebra.contraction_order import einsum_path
from optinv.algebra.signature import Signature

PRIME = 16777213  # largest prime below 2**24: a product of two residues fits 48 bits
CHUNK = 1 << 14  # products summed before reducing: 2**48 * 2**14 < 2**63


def matmul_mod(a: np.ndarray, b: np.ndarray, p: int = PRIME) -> np.ndarray:
    """``a @ b mod p`` for int64 residues (leading batch axes broadcast), reducing every :data:`CHUNK` terms."""
    k = a.shape[-1]
    out = None
    for start in range(0, k, CHUNK):
        part = np.matmul(a[..., start:start + CHUNK], b[..., start:start + CHUNK, :]) % p
        out = part if out is None else (out + part) % p
    if out is None:  # nothing to contract over
        out = np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-2] + (1,))[:-1] + (a.shape[-2], b.shape[-1]),
                       dtype=np.int64)
    return out


def _merge(sa: str, a: np.ndarray, sb: str, b: np.ndarray, later: set, batched: bool, n: int, p: int):
    """Contract two residue tensors over the indices they share that are not needed later.

    With ``batched``, each operand carries a leading axis of length ``n`` or 1.
    """
    shared = [c for c in sa if c in sb and c not in later]
    keep_a = [c for c in sa if c not in shared]
    keep_b = [c for c in sb if c not in shared]
    lead = "..." if batched else ""
    a2 = np.einsum(f"{lead}{sa}->{lead}{''.join(keep_a + shared)}", a)
    b2 = np.einsum(f"{lead}{sb}->{lead}{''.join(shared + keep_b)}", b)
    batch = (a2.shape[0],) if batched else ()
    a2 = a2.reshape(batch + (3 ** len(keep_a), 3 ** len(shared)))
    b2 = b2.reshape(((b2.shape[0],) if batched else ()) + (3 ** len(shared), 3 ** len(keep_b)))
    res = matmul_mod(a2, b2, p)
    shape = ((res.shape[0],) if batched else ()) + (3,) * (len(keep_a) + len(keep_b))
    return "".join(keep_a + keep_b), res.reshape(shape)


def contract_mod(inputs: list[str], output: str, operands: list[np.ndarray], p: int = PRIME,
                 batched: list[bool] | None = None) -> np.ndarray:
    """Exact ``einsum(inputs -> output)`` of int64 residues modulo ``p``.

    Every index appears in exactly two places (inputs or output), as in a
    contraction graph; pairs are merged in NumPy's optimised order.  With
    ``batched``, operand ``i`` has a leading axis of ``n`` points where
    ``batched[i]`` (others are shared by all points), and so has the result.
    """
    n = 1
    if batched is not None and any(batched):
        n = next(op.shape[0] for op, b in zip(operands, batched) if b)
        operands = [op if b else op[None] for op, b in zip(operands, batched)]
        lead = "..."
    else:
        lead = ""
    subs = ",".join(lead + s for s in inputs) + "->" + lead + output
    if len(operands) == 1:
        return np.einsum(subs, operands[0]) % p
    shapes = tuple(((min(op.shape[0], 8),) + op.shape[1:]) if lead else op.shape for op in operands)
    path = einsum_path(subs, shapes)
    ops = list(zip(inputs, operands))
    for group in path[1:]:
        picked = [ops[i] for i in group]
        for i in sorted(group, reverse=True):
            ops.pop(i)
        (sa, a) = picked[0]
        for n_merged, (sb, b) in enumerate(picked[1:], start=2):
            later = set(output).union(*(s for s, _ in ops), *(s for s, _ in picked[n_merged:]))
            sa, a = _merge(sa, a, sb, b, later, bool(lead), n, p)
        ops.append((sa, a))
    (s_final, final), = ops
    result = np.einsum(f"{lead}{s_final}->{lead}{output}", final) % p
    return np.broadcast_to(result, (n,) + result.shape[1:]).copy() if lead else result


def exact_tensors(x_int: np.ndarray, signature: Signature, p: int = PRIME) -> dict[str, np.ndarray]:
    """Cartesian tensors of an integer row ``(D,)``, or rows ``(K, D)`` (leading axis kept), mod ``p``."""
    # C has entries 0, +-1: at most 2l+1 residues per entry, far from overflowing int64
    lifted = tensors_of_rows(np.asarray(x_int, dtype=np.int64) % p, signature)
    return {name: t % p for name, t in lifted.items()}


def random_integer_point(signature: Signature, rng: np.random.Generator, p: int = PRIME) -> np.ndarray:
    """A uniformly random point of ``(Z/p)^D`` (generic with probability ~1 - deg/p)."""
    return rng.integers(0, p, size=signature.dim, dtype=np.int64)


class ModularEchelon:
    """Incremental row echelon form over GF(p): add vectors, learn whether the rank rose."""

    def __init__(self, dim: int, p: int = PRIME):
        self.dim = dim
        self.p = p
        self.rows: list[np.ndarray] = []  # normalised: row[pivot] == 1
        self.pivots: list[int] = []

    @property
    def rank(self) -> int:
        return len(self.rows)

    def reduce(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.int64) % self.p
        for row, piv in zip(self.rows, self.pivots):
            if v[piv]:
                v = (v - v[piv] * row) % self.p
        return v

    def add(self, v: np.ndarray) -> bool:
        """Add ``v``; return True when it is independent of the rows so far (rank rose)."""
        v = self.reduce(v)
        nz = np.flatnonzero(v)
        if nz.size == 0:
            return False
        piv = int(nz[0])
        inv = pow(int(v[piv]), self.p - 2, self.p)
        self.rows.append(v * inv % self.p)
        self.pivots.append(piv)
        return True


def pivot_columns(matrix: np.ndarray, p: int = PRIME) -> list[int]:
    """Greedy (left to right) maximal set of linearly independent columns of an integer matrix mod ``p``.

    Column ``c`` is kept exactly when it is not in the span of the columns before it; this is
    the list of pivot columns of the reduced row echelon form over GF(p).

    >>> pivot_columns(np.array([[1, 2, 0], [2, 4, 1]]))
    [0, 2]
    """
    A = np.asarray(matrix, dtype=np.int64) % p
    m, n = A.shape
    pivots: list[int] = []
    row = 0
    for c in range(n):
        if row == m:
            break
        nz = np.flatnonzero(A[row:, c])
        if nz.size == 0:
            continue
        r = row + int(nz[0])
        if r != row:
            A[[row, r]] = A[[r, row]]
        inv = pow(int(A[row, c]), p - 2, p)
        A[row, c:] = A[row, c:] * inv % p
        f = A[:, c].copy()
        f[row] = 0
        rows = np.flatnonzero(f)
        if rows.size:
            A[np.ix_(rows, np.arange(c, n))] = (A[rows, c:] - f[rows, None] * A[row, c:][None, :]) % p
        pivots.append(c)
        row += 1
    return pivots


def modular_rank(matrix: np.ndarray, p: int = PRIME) -> int:
    """Exact rank of an integer matrix modulo ``p``: its number of pivot columns (of the narrower side)."""
    A = np.asarray(matrix, dtype=np.int64)
    if A.ndim != 2:
        raise ValueError(f"matrix: expected 2 dimensions, got shape {A.shape}")
    return len(pivot_columns(A.T if A.shape[0] < A.shape[1] else A, p))


# -- many spans at once: one stack of row sets, reduced together ---------------------------------------


def stack_rows(matrices: list[np.ndarray]) -> np.ndarray:
    """Stack row sets ``(n, k_s)`` (same n) into ``(len(matrices), n, max k_s)``, zero-padded, mod ``PRIME``."""
    width = max(M.shape[1] for M in matrices)
    R = np.zeros((len(matrices), matrices[0].shape[0], width), dtype=np.int64)
    for s, M in enumerate(matrices):
        R[s, :, : M.shape[1]] = M % PRIME
    return R


def eliminate_with(R: np.ndarray, c: int, p: int = PRIME) -> tuple[np.ndarray, np.ndarray]:
    """Take row ``c`` of every set as a pivot: returns the reduced stack and where row ``c`` was nonzero.

    Incremental echelon form of many spans at once: after the call every row
    of set s is reduced against row c of set s (where that was nonzero), so a
    row is nonzero exactly when it would raise that span's rank.

    >>> R = stack_rows([np.array([[1, 2], [2, 4], [0, 1]])])
    >>> R2, raised = eliminate_with(R, 0)
    >>> raised.tolist(), (R2[0] != 0).any(axis=1).tolist()
    ([True], [False, False, True])
    """
    row = R[:, c, :]
    nz = row != 0
    raised = nz.any(axis=1)
    out = R.copy()
    sets = np.flatnonzero(raised)
    if sets.size == 0:
        return out, raised
    cols = nz[sets].argmax(axis=1)
    inverses = np.array([pow(int(v), p - 2, p) for v in row[sets, cols]], dtype=np.int64)
    pivots = row[sets] * inverses[:, None] % p  # 1 at each pivot column
    column = R[sets, :, cols]  # every row's entry in its set's pivot column
    out[sets] = (R[sets] - column[:, :, None] * pivots[:, None, :] % p) % p
    return out, raised


def ranks_after(R0: np.ndarray, members, p: int = PRIME) -> np.ndarray:
    """Rank of the rows ``members`` in every set of the stack."""
    R = R0
    ranks = np.zeros(R0.shape[0], dtype=np.int64)
    for c in members:
        R, raised = eliminate_with(R, c, p)
        ranks += raised
    return ranks
