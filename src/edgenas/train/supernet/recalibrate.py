"""BatchNorm statistics recomputed for one sub-network before it is scored (once-for-all's
`set_running_statistics`): the statistics the supernet's shared buffers hold mix every sub-network trained,
so a sub-network is scored with its own.

The network runs in training mode (each BatchNorm normalises with its batch's statistics, as OFA does) over
a fixed set of training samples; a forward pre-hook on every BatchNorm sums its input per channel (float64),
and afterwards running_mean is the mean over all samples and pixels and running_var their variance with
torch's unbiased convention (n / (n - 1)), as a single batch of all samples would give, then the network is
put in eval mode (frozen). OFA averages per-batch variances instead; the exact figure over the whole set
does not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


@torch.no_grad()
def recalibrate_bn(module: nn.Module, batches: Iterable[tuple[Tensor, ...]]) -> int:
    """Reset and recompute every BatchNorm's running statistics over `batches` (each a tuple of inputs);
    returns the number of samples seen. The module is left in eval mode."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    sums: dict[int, list] = {}

    def hook(bn: nn.Module, args: tuple[Tensor, ...]) -> None:
        x = args[0].detach().to(torch.float64)
        dims = [d for d in range(x.dim()) if d != 1]
        acc = sums.setdefault(id(bn), [0.0, 0.0, 0])
        acc[0] = acc[0] + x.sum(dims)
        acc[1] = acc[1] + (x * x).sum(dims)
        acc[2] += x.numel() // x.shape[1]

    handles = [bn.register_forward_pre_hook(hook) for bn in bns]
    samples = 0
    module.train()
    try:
        for xs in batches:
            module(*xs)
            samples += int(xs[0].shape[0])
    finally:
        for h in handles:
            h.remove()
    for bn in bns:
        acc = sums.get(id(bn))
        if acc is None:  # not reached by the inputs: keep what it has
            continue
        s1, s2, n = acc
        mean = s1 / n
        var = (s2 / n - mean * mean).clamp_min(0.0) * (n / max(n - 1, 1))
        bn.running_mean.copy_(mean.to(bn.running_mean.dtype))
        bn.running_var.copy_(var.to(bn.running_var.dtype))
        if bn.num_batches_tracked is not None:
            bn.num_batches_tracked.fill_(1)
    module.eval()
    return samples
