"""Weight-sharing supernet (issue 11): one weight store for every sub-network of a space, trained once with
single-path uniform sampling (SPOS) or the sandwich rule with in-place distillation, then any sub-network
evaluated in seconds after its BatchNorm statistics are recomputed, or exported as a stand-alone checkpoint.

Modules, one job each: `slots` (which ops share weights), `store` (the largest tensors and their slices),
`supernet` (serving a sub-network), `sampling` (which sub-networks a step uses), `strategies` (the step
functions), `settings` (the `supernet:` config section), `run` (training into a folder), `recalibrate`
(BatchNorm statistics), `evaluate` (scoring and exporting sub-networks).
"""
