"""A training step changes only the store entries its sub-networks used.

Slots no sub-network of the step touched have no gradient, so torch's optimizers leave them alone. A slot
used in part (a 3x3 kernel inside a 5x5 slot, 8 of 12 channels) gets a gradient of zeros elsewhere, and
the optimizer would still move those entries: AdamW's decoupled weight decay shrinks them and Adam's
momentum keeps pushing them with gradients of earlier steps. That would make the ring of a 5x5 kernel
decay while only 3x3 heads are sampled, and break the rule that a sub-network's weights change only when
it (or a network sharing them) trains. So the entries outside the step's slices, and their optimizer
state (momentum, second moments), are put back after each step. Adam's per-tensor step count still counts
every step of the tensor (its bias correction is per tensor in torch).

Done with the optimizer's own step hooks (`register_step_pre_hook` / `register_step_post_hook`), so the
stand-alone trainer's loop, checkpoints and resume are used unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from edgenas.train.supernet.store import WeightStore


def _mask(shape: torch.Size, slices: list[tuple[slice, ...]], device: torch.device) -> Tensor:
    m = torch.zeros(shape, dtype=torch.bool, device=device)
    for idx in slices:
        m[idx] = True
    return m


class KeepUnused:
    """Hooks an optimizer so each step only changes what the step's sub-networks used; the store records
    the slices it serves between `begin()` (call before the step's forward passes) and the optimizer step."""

    def __init__(self, store: WeightStore, optimizer: torch.optim.Optimizer) -> None:
        self.store = store
        self.opt = optimizer
        self.params = dict(store.named_parameters())
        self._saved: list[tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]] = []
        optimizer.register_step_pre_hook(self._before)
        optimizer.register_step_post_hook(self._after)

    def begin(self) -> None:
        self.store.used = {}

    def _before(self, opt: Any, args: Any, kwargs: Any) -> None:
        used = self.store.used or {}
        self._saved = []
        for name, slices in used.items():
            p = self.params[name]
            if p.grad is None:
                continue
            keep = ~_mask(p.shape, slices, p.device)
            if not keep.any():
                continue
            state = {k: v.clone() for k, v in self.opt.state.get(p, {}).items()
                     if isinstance(v, Tensor) and v.shape == p.shape}
            self._saved.append((p, keep, p.detach().clone(), state))

    @torch.no_grad()
    def _after(self, opt: Any, args: Any, kwargs: Any) -> None:
        for p, keep, old, state in self._saved:
            p[keep] = old[keep]
            now = self.opt.state.get(p, {})
            for k, v in state.items():
                if k in now:
                    now[k][keep] = v[keep]
        self._saved = []
        self.store.used = None
