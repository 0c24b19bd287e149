"""Weight-sharing supernet (issue 11): one weight store for every sub-network of a space, trained once with
single-path uniform sampling (SPOS) or the sandwich rule with in-place distillation, then any sub-network
evaluated in seconds after its BatchNorm statistics are recomputed, or exported as a stand-alone checkpoint.

Modules, one job each: `slots` (which ops share weights), `store` (the largest tensors and their slices),
`supernet` (serving a sub-network), `sampling` (which sub-networks a step uses), `strategies` (the step
functions), `settings` (the `supernet:` config section), `run` (training into a folder), `recalibrate`
(BatchNorm statistics), `evaluate` (scoring and exporting sub-networks), `fewshot` (one sub-supernet
per option of a choice point, served as one).
"""

from edgenas.train.supernet.evaluate import SubnetScore, evaluate_subnets, export_subnet
from edgenas.train.supernet.recalibrate import recalibrate_bn
from edgenas.train.supernet.run import load_supernet, make_setup, prepare_supernet, train_supernet
from edgenas.train.supernet.store import WeightStore, build_store
from edgenas.train.supernet.supernet import Supernet

__all__ = [
           "SubnetScore",
           "Supernet",
           "WeightStore",
           "build_store",
           "evaluate_subnets",
           "export_subnet",
           "load_supernet",
           "make_setup",
           "prepare_supernet",
           "recalibrate_bn",
           "train_supernet",
]
