"""Training-free accuracy estimates ("zero-cost proxies") of a network at initialisation, on one batch.

- `grad_norm`: sum over weight tensors of the L2 norm of dLoss/dW (Abdelfattah et al. 2021).
- `snip`: sum |dLoss/dW * W| (Lee et al. 2019, as scored by Abdelfattah et al.).
- `synflow`: with every weight replaced by its absolute value, an all-ones input in float64 and
  R = sum(outputs): sum |dR/dW * W| (Tanaka et al. 2020). Data-free; BatchNorm in eval mode at its initial
  statistics (an identity), as the proxy is defined for networks without it.
- `jacob_cov`: from the input Jacobians of the batch: -sum(log(v + k) + 1/(v + k)) over the eigenvalues v of
  their correlation matrix, k = 1e-5 (Mellor et al. 2021, v1 of NASWOT).
- `naswot`: log-determinant of the Hamming kernel of the samples' binary activation codes (which units
  are > 0 after each activation) (Mellor et al. 2021, v2).
- `params`, `macs`: the IR's counts, the baselines every proxy must beat.
Higher means "predicted better" for every score. No kept library implements these for an arbitrary module
with edgenas's tasks (the reference code, `foresight`, is unmaintained and not on PyPI), hence by hand.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from edgenas.train.builder import GraphModule

__all__ = ["PROXIES", "proxy_scores"]

LossFn = Callable[[tuple[Tensor, ...], Tensor], Tensor]


def _weights(module: nn.Module) -> list[Tensor]:
    """Conv, transposed conv and linear weights (not biases, not BatchNorm): what the proxies score."""
    return [m.weight for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]


def grad_norm(module: GraphModule, x: Tensor, y: Tensor, loss_fn: LossFn) -> float:
    module.zero_grad(set_to_none=True)
    loss_fn(module(x), y).backward()
    return float(sum(w.grad.norm() for w in _weights(module) if w.grad is not None))


def snip(module: GraphModule, x: Tensor, y: Tensor, loss_fn: LossFn) -> float:
    module.zero_grad(set_to_none=True)
    loss_fn(module(x), y).backward()
    return float(sum((w.grad * w.detach()).abs().sum() for w in _weights(module) if w.grad is not None))


def synflow(module: GraphModule, x: Tensor, y: Tensor, loss_fn: LossFn) -> float:
    module = module.double()
    module.eval()  # BatchNorm at its initial statistics: identity
    with torch.no_grad():
        signs = {}
        for name, p in module.state_dict().items():
            if p.is_floating_point():
                signs[name] = torch.sign(p)
                p.abs_()
    module.zero_grad(set_to_none=True)
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64)
    total = sum(o.sum() for o in module(ones))
    total.backward()
    score = float(sum((w.grad * w.detach()).abs().sum() for w in _weights(module) if w.grad is not None))
    with torch.no_grad():
        for name, p in module.state_dict().items():
            if name in signs:
                p.mul_(signs[name])
    module.float()
    return score


def jacob_cov(module: GraphModule, x: Tensor, y: Tensor, loss_fn: LossFn) -> float:
    x = x.clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    outs = module(x)
    sum(o.sum() for o in outs).backward()
    jac = x.grad.reshape(x.shape[0], -1).double()
    corr = torch.corrcoef(jac)
    corr = torch.nan_to_num(corr, nan=0.0)
    v = torch.linalg.eigvalsh(corr).clamp(min=0.0)
    k = 1e-5
    return float(-torch.sum(torch.log(v + k) + 1.0 / (v + k)))


def naswot(module: GraphModule, x: Tensor, y: Tensor, loss_fn: LossFn) -> float:
    graph = module.graph
    activated = {t for op in graph.ops
                 if op.kind in ("relu", "relu6", "hard_swish") or op.attrs.get("act", "none") != "none"
                 for t in op.outputs}
    with torch.no_grad():
        kept, _ = module.run(x, keep=True)
        codes = torch.cat([(kept[t] > 0).reshape(x.shape[0], -1).double() for t in graph.tensors
                           if t in activated], dim=1)
    k = codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T
    sign, logdet = torch.linalg.slogdet(k)
    return float(logdet) if sign > 0 else -math.inf


PROXIES: dict[str, Callable[[GraphModule, Tensor, Tensor, LossFn], float]] = {
    "synflow": synflow,
    "naswot": naswot,
    "jacob_cov": jacob_cov,
    "snip": snip,
    "grad_norm": grad_norm,
}
BASELINES = ("params", "macs")


def proxy_scores(module: GraphModule, x: Tensor, y: Tensor, loss_fn: LossFn, names: tuple[str, ...] | None = None,
                 ) -> dict[str, tuple[float, float]]:
    """{name: (score, seconds)} for the requested proxies (default: all, and the baselines) on one batch.
    The module is left as it was given (weights restored after synflow, train/eval mode restored)."""
    names = names or (*PROXIES, *BASELINES)
    was_training = module.training
    saved = copy.deepcopy(module.state_dict())  # BatchNorm statistics move in train mode; put them back
    out: dict[str, tuple[float, float]] = {}
    for name in names:
        t0 = time.perf_counter()
        if name == "params":
            value = float(module.graph.params)
        elif name == "macs":
            value = float(module.graph.macs)
        else:
            module.train()
            value = PROXIES[name](module, x, y, loss_fn)
        out[name] = (value, time.perf_counter() - t0)
        module.load_state_dict(saved)
    module.zero_grad(set_to_none=True)
    module.train(was_training)
    return out
