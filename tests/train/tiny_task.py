"""A tiny classification task and network for trainer tests: 96 seeded 16x16 images whose class is the
orientation of their stripes (horizontal, vertical, diagonal, anti-diagonal; random phase and noise), which
a pooled conv net learns in a few epochs on a CPU."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from edgenas.graph.blocks import BlockArgs, apply_block
from edgenas.graph.ir import Graph
from edgenas.train.tasks.base import Task, TaskData


def blobs(n: int, seed: int, res: tuple[int, int] = (16, 16)) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    h, w = res
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    y = torch.randint(0, 4, (n,), generator=g)
    phase = torch.rand(n, generator=g) * 6.28
    x = torch.randn(n, 1, h, w, generator=g) * 0.3
    for i in range(n):
        coord = (yy, xx, yy + xx, yy - xx)[int(y[i])]
        x[i, 0] += torch.sin(coord * 1.6 + phase[i])
    return TensorDataset(x, y)


class BlobTask(Task):
    name = "blobs"
    kind = "classification"
    primary = "top1"
    higher_is_better = True

    def data(self, resolution, *, seed):
        return TaskData(blobs(96, seed, resolution), blobs(32, seed + 1, resolution), {"samples": 96})

    def eval_data(self, resolution, *, source=None):
        return blobs(32, 1234, resolution)

    def loss(self, outputs, target):
        return F.cross_entropy(outputs[0], target)

    def metric_sums(self, outputs, target):
        correct = (outputs[0].argmax(1) == target).sum().item()
        return {"top1": (100.0 * correct, len(target))}


def tiny_graph(res: tuple[int, int] = (16, 16)) -> Graph:
    g = Graph("tiny")
    x = g.add_input("input", (1, res[0], res[1], 1))
    y = apply_block(g, "conv3x3", x, "stem", BlockArgs(8, 2, "relu"))
    y = apply_block(g, "dsconv3x3", y, "unit", BlockArgs(16, 2, "relu"))
    y = g.add("global_avg_pool", "pool", [y])
    g.mark_output(g.add("fully_connected", "fc", [y], units=4))
    return g


HERE = Path(__file__).parent
