"""hippynn's ``calc_invariants`` (HIP-HOP-NN, l_max <= 3, n_max <= 4) on PyTorch, as a peer.

``forward`` runs under ``torch.no_grad`` (inference, the peer's best case);
``forward_backward`` runs the forward with autograd on ``x`` and
``torch.autograd.grad(y, x, g)``, which is what training through the layer
costs.  The coefficient maps are hippynn's own (``tensors.cmaps``), cast to the
input dtype.  Thread count: ``torch.set_num_threads``.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "False")  # no triton/numba/cupy here: silence the notice


def available() -> str | None:
    """None if hippynn and torch import, else the reason they do not."""
    try:
        _import()
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip this peer"
        return f"{type(exc).__name__}: {exc}"
    return None


def _import():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch
        from hippynn.layers.hiplayers import tensors
    return torch, tensors


SUPPORTED = {(l, n) for l in range(0, 4) for n in range(1, 5)}


class HippynnPeer:
    def __init__(self, l_max: int, n_max: int, dtype, device: str = "cpu"):
        torch, tensors = _import()
        if (l_max, n_max) not in SUPPORTED:
            raise ValueError(f"hippynn's calc_invariants supports l_max <= 3, n_max <= 4, not ({l_max}, {n_max})")
        self.torch = torch
        self.l_max, self.n_max = l_max, n_max
        tdtype = {"float32": torch.float32, "float64": torch.float64}[str(dtype)]
        self.C = [tensors.cmaps[i].to(dtype=tdtype, device=device) for i in range(4)]
        self.calc_invariants = tensors.calc_invariants  # hippynn.layers.hiplayers.tensors, public

    def set_num_threads(self, n: int) -> None:
        self.torch.set_num_threads(int(n))

    def forward(self, x):
        with self.torch.no_grad():
            return self.calc_invariants(self.l_max, self.n_max, x, self.C)

    def forward_backward(self, x, g):
        x = x.detach().requires_grad_(True)
        y = self.calc_invariants(self.l_max, self.n_max, x, self.C)
        (gx,) = self.torch.autograd.grad(y, x, g)
        return y, gx
