"""ACE descriptors from atoms: neighbour pairs -> ``A_{n,l}`` -> invariants, forces by autograd.

Pipeline, per atom ``i`` with neighbours ``j`` inside the cutoff::

    r_ij = x_j - x_i + shift_ij                      (shift: periodic image, fixed cell)
    A_i[n, l] = sum_j R_n^{(Z_i, Z_j)}(|r_ij|) * Y_l(r_ij / |r_ij|)
    descriptors_i = backend(A_i)                     (invariants of the rows A_i)

``Y_l`` are the free coefficients of the symmetric traceless part of ``u^{(x)l}`` in the
engine's convention; rows of ``A`` follow :func:`.sets.ace_signature` (``s0..s{n-1}, v0.., ...``).
Everything is torch, so ``forces = -dE/dx`` comes from autograd (the backend's VJP), and
training on forces differentiates that once more.

>>> from ase.build import molecule
>>> from examples.ace.sets import independent_set
>>> desc = ACEDescriptor(independent_set(2, 2, 3), cutoff=3.5, species=[1, 6])
>>> desc.from_atoms(molecule("CH4")).shape
(5, 15)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .backends import make_backend
from .radial import RadialBasis, unit_tensor_coefficients
from .sets import DescriptorSet


@dataclass
class Structures:
    """Several configurations packed together (atoms and neighbour pairs concatenated).

    ``pair_i``/``pair_j`` are global atom indices; ``pair_shift`` the Cartesian image shift,
    so ``r_ij = positions[j] - positions[i] + pair_shift``.
    """

    positions: np.ndarray  # (N_atoms, 3)
    numbers: np.ndarray  # (N_atoms,)
    atom_offsets: np.ndarray  # (n_conf + 1,)
    pair_i: np.ndarray  # (N_pairs,)
    pair_j: np.ndarray
    pair_shift: np.ndarray  # (N_pairs, 3)
    pair_offsets: np.ndarray  # (n_conf + 1,)

    @property
    def n_configs(self) -> int:
        return len(self.atom_offsets) - 1

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    def config_of_atom(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_configs), np.diff(self.atom_offsets))

    def subset(self, configs, return_index: bool = False):
        """The given configurations (in that order), re-packed.

        With ``return_index``, also the old indices of the kept atoms and pairs (to gather
        per-atom or per-pair arrays aligned with this object).
        """
        configs = np.asarray(configs, dtype=np.int64)
        a0, a1 = self.atom_offsets[configs], self.atom_offsets[configs + 1]
        p0, p1 = self.pair_offsets[configs], self.pair_offsets[configs + 1]
        na, npair = a1 - a0, p1 - p0
        atoms = _ranges(a0, na)
        pairs = _ranges(p0, npair)
        new_a_off = np.concatenate([[0], np.cumsum(na)])
        shift = np.repeat(new_a_off[:-1] - a0, npair)  # old global index -> new global index
        out = Structures(
            self.positions[atoms], self.numbers[atoms], new_a_off,
            self.pair_i[pairs] + shift, self.pair_j[pairs] + shift, self.pair_shift[pairs],
            np.concatenate([[0], np.cumsum(npair)]),
        )
        return (out, atoms, pairs) if return_index else out

    @classmethod
    def from_atoms(cls, atoms_list, cutoff: float) -> "Structures":
        """Neighbour lists with ASE (periodic boundaries honoured)."""
        from ase.neighborlist import neighbor_list

        if not isinstance(atoms_list, (list, tuple)):
            atoms_list = [atoms_list]
        pos, num, a_off, pi, pj, ps, p_off = [], [], [0], [], [], [], [0]
        for atoms in atoms_list:
            i, j, S = neighbor_list("ijS", atoms, cutoff)
            base = a_off[-1]
            pos.append(atoms.get_positions())
            num.append(atoms.get_atomic_numbers())
            pi.append(i + base)
            pj.append(j + base)
            ps.append(S @ np.asarray(atoms.get_cell()))
            a_off.append(base + len(atoms))
            p_off.append(p_off[-1] + len(i))
        return cls(np.concatenate(pos).astype(np.float64), np.concatenate(num).astype(np.int64), np.array(a_off),
                   np.concatenate(pi).astype(np.int64), np.concatenate(pj).astype(np.int64),
                   np.concatenate(ps).astype(np.float64), np.array(p_off))

    @classmethod
    def from_molecules(cls, positions: np.ndarray, numbers: np.ndarray, cutoff: float) -> "Structures":
        """Fast path for many non-periodic configurations of the same size: ``positions`` ``(C, n, 3)``."""
        positions = np.asarray(positions, dtype=np.float64)
        C, n, _ = positions.shape
        numbers = np.asarray(numbers, dtype=np.int64)
        numbers = np.broadcast_to(numbers, (C, n))
        d = np.linalg.norm(positions[:, None, :, :] - positions[:, :, None, :], axis=-1)  # d[c, i, j]
        mask = (d < cutoff) & ~np.eye(n, dtype=bool)[None]
        c, i, j = np.nonzero(mask)  # sorted by config, then i, then j (as ASE's neighbor_list)
        counts = np.bincount(c, minlength=C)
        return cls(positions.reshape(-1, 3), numbers.reshape(-1).copy(), np.arange(C + 1) * n,
                   c * n + i, c * n + j, np.zeros((len(c), 3)), np.concatenate([[0], np.cumsum(counts)]))


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each start and length."""
    if len(lengths) == 0:
        return np.zeros(0, dtype=np.int64)
    total = int(lengths.sum())
    offs = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + np.arange(total) - offs


class ACEDescriptor(torch.nn.Module):
    """Per-atom ACE descriptors for one :class:`.sets.DescriptorSet` and one radial basis."""

    def __init__(self, dset: DescriptorSet, cutoff: float, species, backend: str | torch.nn.Module = "poly",
                 radial_seed: int = 0):
        super().__init__()
        self.dset = dset
        self.radial = RadialBasis(dset.n_rad, cutoff, species, seed=radial_seed)
        self.backend = make_backend(dset, backend) if isinstance(backend, str) else backend

    @property
    def n_features(self) -> int:
        return len(self.dset)

    @property
    def cutoff(self) -> float:
        return self.radial.cutoff

    def pair_terms(self, vec: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor) -> torch.Tensor:
        """Each pair's contribution ``R_n(r) Y_l(r_hat)`` to its centre's ``A`` row: ``(P, D)``."""
        r = torch.linalg.norm(vec, dim=-1)
        u = vec / r.unsqueeze(-1)
        R = self.radial(r, centre, neighbour)  # (P, n)
        blocks = []
        for l in range(self.dset.l_max + 1):
            Y = unit_tensor_coefficients(u, l)  # (P, 2l+1)
            blocks.append((R.unsqueeze(-1) * Y.unsqueeze(1)).reshape(len(r), -1))  # channel-major
        return torch.cat(blocks, dim=1)

    def _pairs(self, positions: torch.Tensor, s: Structures):
        dtype, dev = positions.dtype, positions.device
        pi = torch.as_tensor(s.pair_i, device=dev)
        pj = torch.as_tensor(s.pair_j, device=dev)
        vec = positions[pj] - positions[pi] + torch.as_tensor(s.pair_shift, dtype=dtype, device=dev)
        sp = torch.as_tensor(self.radial.species_index(s.numbers), device=dev)
        return pi, vec, sp[pi], sp[pj]

    def base(self, positions: torch.Tensor, s: Structures) -> torch.Tensor:
        """``A`` rows ``(N_atoms, D)`` in the signature's layout."""
        pi, vec, ci, cj = self._pairs(positions, s)
        contrib = self.pair_terms(vec, ci, cj)
        A = torch.zeros(s.n_atoms, contrib.shape[1], dtype=positions.dtype, device=positions.device)
        return A.index_add(0, pi, contrib)

    def base_and_jacobian(self, s: Structures, dtype=torch.float64, chunk: int = 200_000):
        """``A`` rows ``(N_atoms, D)`` and each pair term's Jacobian ``J`` ``(P, D, 3)`` w.r.t. ``r_ij``.

        The base only depends on positions through the pair vectors, so with ``g = dE/dA``
        the forces follow from ``dE/dr_ij = g_i . J_ij`` (see :func:`forces_from_base`);
        precomputing ``A`` and ``J`` once makes training on forces much cheaper.
        """
        positions = torch.as_tensor(s.positions, dtype=torch.float64)
        pi, vec, ci, cj = self._pairs(positions, s)
        terms, jac = [], []
        for a in range(0, len(vec), chunk):
            sl = slice(a, a + chunk)

            def f(v, sl=sl):
                return self.pair_terms(v, ci[sl], cj[sl])

            v = vec[sl]
            cols = []
            for k in range(3):
                tangent = torch.zeros_like(v)
                tangent[:, k] = 1.0
                with warnings.catch_warnings():  # torch's own jvp decompositions use torch.jit.script
                    warnings.simplefilter("ignore", DeprecationWarning)
                    out, dout = torch.func.jvp(f, (v,), (tangent,))
                cols.append(dout)
            terms.append(out)
            jac.append(torch.stack(cols, dim=-1))
        contrib = torch.cat(terms) if terms else torch.zeros(0, self.dset.signature.dim, dtype=torch.float64)
        J = torch.cat(jac) if jac else torch.zeros(0, self.dset.signature.dim, 3, dtype=torch.float64)
        A = torch.zeros(s.n_atoms, contrib.shape[1], dtype=torch.float64).index_add(0, pi, contrib)
        return A.to(dtype), J.to(dtype)

    def forward(self, positions: torch.Tensor, s: Structures) -> torch.Tensor:
        """Descriptors ``(N_atoms, K)``; differentiable (twice) with respect to ``positions``."""
        return self.backend(self.base(positions, s))

    def from_atoms(self, atoms, dtype=torch.float64) -> np.ndarray:
        """Descriptors of one ASE ``Atoms`` as a NumPy array ``(n_atoms, K)``."""
        s = Structures.from_atoms(atoms, self.cutoff)
        with torch.no_grad():
            return self(torch.as_tensor(s.positions, dtype=dtype), s).numpy()


def forces_from_base(dE_dA: torch.Tensor, J: torch.Tensor, s: Structures) -> torch.Tensor:
    """Forces ``(N_atoms, 3)`` from ``dE/dA`` ``(N_atoms, D)`` and the pair Jacobians ``J`` ``(P, D, 3)``."""
    pi = torch.as_tensor(s.pair_i)
    pj = torch.as_tensor(s.pair_j)
    dE_dr = torch.einsum("pd,pdc->pc", dE_dA.index_select(0, pi), J)  # r_ij = x_j - x_i + shift
    zeros = torch.zeros(s.n_atoms, 3, dtype=dE_dA.dtype, device=dE_dA.device)
    return zeros.index_add(0, pi, dE_dr).index_add(0, pj, -dE_dr)  # F = -dE/dx


def energy_and_forces_from_base(model, backend, A: torch.Tensor, J: torch.Tensor, s: Structures,
                                create_graph: bool = False):
    """Like :func:`energy_and_forces`, from precomputed ``A`` and ``J`` (:meth:`ACEDescriptor.base_and_jacobian`)."""
    A = A.detach().requires_grad_(True)
    e_atom = model(backend(A), torch.as_tensor(s.numbers))
    conf = torch.as_tensor(s.config_of_atom())
    E = torch.zeros(s.n_configs, dtype=e_atom.dtype).index_add(0, conf, e_atom)
    (g,) = torch.autograd.grad(E.sum(), A, create_graph=create_graph)
    return E, forces_from_base(g, J, s)


def energy_and_forces(model, desc: ACEDescriptor, s: Structures, positions: torch.Tensor | None = None,
                      create_graph: bool = False):
    """Total energies ``(n_conf,)`` and forces ``(N_atoms, 3)`` of ``model(descriptors, numbers) -> per-atom E``."""
    if positions is None:
        positions = torch.as_tensor(s.positions, dtype=torch.get_default_dtype())
    positions = positions.detach().requires_grad_(True)
    D = desc(positions, s)
    e_atom = model(D, torch.as_tensor(s.numbers))
    conf = torch.as_tensor(s.config_of_atom())
    E = torch.zeros(s.n_configs, dtype=e_atom.dtype).index_add(0, conf, e_atom)
    (grad,) = torch.autograd.grad(E.sum(), positions, create_graph=create_graph)
    return E, -grad
