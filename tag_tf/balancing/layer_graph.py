"""Walking a Keras functional model's graph: its layers in order, and the shared layers nearest
its outputs (GradNorm's default W).

>>> import keras
>>> inner = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, name="d")], name="inner")
>>> [layer.name for layer in flatten_layers(inner)]
['inner', 'd']
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf


def shared_layers(model: keras.Model, shared: Sequence) -> list:
    """Every layer of `model`, nested ones included (`flatten_layers`), whose trainable variables
    are all in `shared`, in the model's order; subclassed models' own layers too."""
    shared_ids = {id(v) for v in shared}
    return [layer for top in model.layers for layer in flatten_layers(top) if layer.trainable_variables
            and not getattr(layer, "layers", None) and all(id(v) in shared_ids for v in layer.trainable_variables)]


def nearest_shared_layers(model: keras.Model, shared: Sequence) -> list:
    """The shared layers (`shared_layers`) with a kernel (dense, convolution) nearest the outputs:
    walking the functional graph back from every output (into nested functional models), the first
    such layer on each path (through normalisation, pooling, cross-stitch units, ...), and none
    upstream of another (a residual block's skip path does not add the block's earlier layer). One
    layer for hard sharing (the trunk's last), every column's or expert's last for soft sharing. In
    the model's order. Where the graph holds none (a subclassed model, called as one layer): the
    last shared layer with a kernel in the model's order, if any.

    >>> from tag_tf.training.roles import VariableRoles
    >>> features = keras.Input((3,), name="features")
    >>> trunk = keras.layers.Dense(4, name="trunk")(features)
    >>> towers = [keras.layers.Dense(4, name=f"tower_{t}")(trunk) for t in "ab"]
    >>> mixed = keras.layers.Add(name="mix")(towers + [trunk])
    >>> model = keras.Model(features, {"a": keras.layers.Dense(1, name="head_a")(mixed),
    ...                                "b": keras.layers.Dense(1, name="head_b")(mixed)})
    >>> [layer.name for layer in nearest_shared_layers(model, VariableRoles.of(model, ["a", "b"]).shared)]
    ['tower_a', 'tower_b']
    """
    candidates = [layer for layer in shared_layers(model, shared) if hasattr(layer, "kernel")]
    ids = {id(layer) for layer in candidates}
    found, upstream, seen = {}, {}, set()
    for output in tf.nest.flatten(model.outputs):
        _walk_back(output, lambda layer: id(layer) in ids, found, set())
    for layer in found.values():  # one walk over everything above the found layers
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                _walk_back(tensor, lambda _: True, upstream, seen, stop_there=False)
    nearest = [layer for layer in candidates if id(layer) in found and id(layer) not in upstream]
    return nearest or candidates[-1:]


def _walk_back(tensor, match, found: dict, seen: set, stop_there: bool = True) -> bool:
    """Walk the functional graph back from `tensor` (into nested functional models), adding every
    layer where `match(layer)` to `found` ({id: layer}) and, with `stop_there`, going no further up
    from it. Returns whether a layer matched."""
    operation, node_index, tensor_index = tensor._keras_history
    if (id(operation), node_index, tensor_index) in seen:
        return False
    seen.add((id(operation), node_index, tensor_index))
    if _graph_of(operation):  # a nested model: through its own graph, then on from its inputs
        matched = _walk_back(tf.nest.flatten(operation.outputs)[tensor_index], match, found, set(), stop_there)
    else:
        matched = match(operation)
        if matched:
            found[id(operation)] = operation
    if matched and stop_there:
        return True
    for parent in operation._inbound_nodes[node_index].input_tensors:
        matched = _walk_back(parent, match, found, seen, stop_there) or matched
    return matched


def _graph_of(layer) -> bool:
    """Whether `layer` is a functional model (a graph to walk into)."""
    return isinstance(layer, keras.Model) and getattr(layer, "outputs", None) is not None


def flatten_layers(layer) -> list:
    """`layer` and, for a nested model, its layers in order, depth first."""
    inner = getattr(layer, "layers", None)
    return [layer] if not inner else [layer] + [sub for child in inner for sub in flatten_layers(child)]
