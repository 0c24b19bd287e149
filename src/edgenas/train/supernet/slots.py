"""Which weights sub-networks share: the slot key of a weighted op, and the shapes its tensors take.

A slot is one entry of the weight store. Two sub-networks use the same slot for an op when the op has the
same IR name, the same kind and was built by a block of the same FAMILY:

- options that differ in size share by slicing (once-for-all's elastic dimensions): conv1x1/3x3/5x5/7x7
  are one family (the 3x3 kernel is the centre of the 5x5), mbconv_e4/e6/..._k5 one family (e4's expand
  channels are e6's first ones), dsconv3x3/5x5/7x7 one family; widths slice the first channels; a unit
  that a shallower network lacks is simply not used;
- options that differ in kind have their own weights: conv vs dsconv vs mbconv vs shuffle vs resnet (their
  ops can carry the same name, e.g. `head1.block.dw` of a dsconv and of an mbconv, and must not share).

Ops outside any searched block (the stem, the predict convs) have the empty family: they share across the
whole space, sliced to each sub-network's kernel and channels (a predict kernel 3 is the centre of a 7).

The family of an op comes from the template's block parameters: which op-name prefix each one builds is
template knowledge, written down here for the built-in templates (`_SCOPES`). A template not listed gets
the empty family everywhere (ops then share by name and kind only).

`tensor_shapes` mirrors the torch builder's parameter shapes from the Graph alone (0.8 ms a network
against 30 ms for building a module, even on the meta device): the store's largest shapes are found over
thousands of sub-networks. A test checks it against `GraphModule.state_dict()` for every block.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from edgenas.graph.ir import WEIGHTED_OPS, Graph, Op
from edgenas.graph.networks import BACKBONES
from edgenas.train.builder import carries_batchnorm

_FAMILIES = (
    (re.compile(r"^conv\dx\d$"), "conv"),
    (re.compile(r"^dsconv\dx\d$"), "dsconv"),
    (re.compile(r"^mbconv_e\d(_k\d)?$"), "mbconv"),
)


def block_family(block: str) -> str:
    """conv3x3 -> conv, dsconv5x5 -> dsconv, mbconv_e6_k5 -> mbconv, shuffle -> shuffle, resnet -> resnet."""
    for pattern, family in _FAMILIES:
        if pattern.match(block):
            return family
    return block


def _flow_scopes(p: Mapping[str, Any]) -> list[tuple[str, str]]:
    scopes = [("backbone.", block_family(BACKBONES[p["backbone"]]))]
    return scopes + [(f"head{i}.block.", block_family(p[f"head{i}_block"])) for i in range(3)]


def _stages_scopes(p: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(f"stage{i}.", block_family(p.get(f"stage{i}_block") or p["stage_block"])) for i in range(14)]


# template name -> (params -> [(op-name prefix, family of the block that builds the ops under it)])
_SCOPES: dict[str, Callable[[Mapping[str, Any]], list[tuple[str, str]]]] = {
    "flow": _flow_scopes,
    "stages": _stages_scopes,
}


def op_families(template: str, params: Mapping[str, Any]) -> Callable[[str], str]:
    """op name -> the family of the block that built it ('' outside any searched block)."""
    scopes = _SCOPES.get(template, lambda p: [])(params)

    def family(op_name: str) -> str:
        for prefix, fam in scopes:
            if op_name.startswith(prefix):
                return fam
        return ""

    return family


def slot_key(op: Op, family: str) -> str:
    """The store's name for an op's weights: family, kind and IR name (dots become `__`, as module keys)."""
    return f"{family or 'any'}:{op.kind}:{op.name.replace('.', '__')}"


def module_key(op_name: str) -> str:
    return op_name.replace(".", "__")  # GraphModule's ModuleDict key of an op


def tensor_shapes(graph: Graph, op: Op) -> dict[str, tuple[int, ...]]:
    """The parameter and buffer shapes of one weighted op's module, by their names inside the module
    (`conv.weight`, `bn.running_mean`, `fc.bias`, ...), as GraphModule builds them."""
    cin = graph.shape(op.inputs[0])[3]
    if op.kind == "fully_connected":
        n = 1
        for d in graph.shape(op.inputs[0])[1:]:
            n *= d
        return {"fc.weight": (op.attr("units"), n), "fc.bias": (op.attr("units"),)}
    k = op.attr("kernel")
    if op.kind == "depthwise_conv2d":
        cout, weight = cin, (cin, 1, k, k)
    elif op.kind == "transpose_conv2d":
        cout = op.attr("out_channels")
        weight = (cin, cout, k, k)
    else:
        cout = op.attr("out_channels")
        weight = (cout, cin, k, k)
    shapes = {"conv.weight": weight}
    if carries_batchnorm(graph, op):
        shapes.update({"bn.weight": (cout,), "bn.bias": (cout,), "bn.running_mean": (cout,),
                       "bn.running_var": (cout,), "bn.num_batches_tracked": ()})
    else:
        shapes["conv.bias"] = (cout,)
    return shapes


def graph_slots(graph: Graph, template: str, params: Mapping[str, Any]) -> dict[str, tuple[str, Op]]:
    """module key -> (slot key, op) for every weighted op of a sub-network's Graph."""
    family = op_families(template, params)
    return {module_key(op.name): (slot_key(op, family(op.name)), op) for op in graph.ops if op.kind in WEIGHTED_OPS}
