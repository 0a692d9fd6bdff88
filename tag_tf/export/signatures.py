"""What a served network takes: its inputs by name, how named request tensors become the model's
input structure, and serialized `tf.Example` protos as input (what TF Serving users of tabular
and recommender models send).

A model's inputs are one tensor, a list, or a dict of named tensors; a request names each input:
a dict input by its key, any other by its Keras `Input` name.

>>> import keras
>>> clicks, user = keras.Input((4,), name="clicks"), keras.Input((2,), name="user", dtype="int32")
>>> model = keras.Model({"clicks": clicks, "user": user}, clicks)
>>> specs = named_input_specs(model)
>>> {name: (spec.shape.as_list(), spec.dtype.name) for name, spec in specs.items()}
{'clicks': ([None, 4], 'float32'), 'user': ([None, 2], 'int32')}
>>> parsed = parse_examples(tf.constant([example_bytes({"clicks": [1.0, 2.0, 3.0, 4.0], "user": [7, 8]})]), specs)
>>> parsed["clicks"].numpy().tolist(), parsed["user"].numpy().tolist()
([[1.0, 2.0, 3.0, 4.0]], [[7, 8]])
"""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np
import tensorflow as tf


def named_input_specs(model: keras.Model) -> dict[str, tf.TensorSpec]:
    """{input name: TensorSpec [None, ...] named so}, in the model's input order."""
    structure = model.input
    if isinstance(structure, dict):
        named = structure.items()
    else:
        named = [(t.name, t) for t in (structure if isinstance(structure, (list, tuple)) else [structure])]
    return {name: tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=name) for name, t in named}


def model_inputs(model: keras.Model, named: Mapping[str, tf.Tensor]):
    """The named tensors of a request arranged as the model takes its inputs."""
    structure = model.input
    if isinstance(structure, dict):
        return {name: named[name] for name in structure}
    if isinstance(structure, (list, tuple)):
        return [named[t.name] for t in structure]
    return named[structure.name]


def is_image(spec: tf.TensorSpec) -> bool:
    """True for [batch, H, W, 3] inputs with known H and W.

    >>> is_image(tf.TensorSpec([None, 8, 8, 3])), is_image(tf.TensorSpec([None, 8]))
    (True, False)
    """
    shape = spec.shape.as_list()
    return len(shape) == 4 and shape[3] == 3 and None not in shape[1:]


def accepts_examples(specs: Mapping[str, tf.TensorSpec]) -> bool:
    """Whether inputs can come as tf.Example features: no image, every shape known, numbers only.

    >>> accepts_examples({"x": tf.TensorSpec([None, 3])}), accepts_examples({"x": tf.TensorSpec([None, 8, 8, 3])})
    (True, False)
    """
    return all(not is_image(s) and None not in s.shape.as_list()[1:] and (s.dtype.is_floating or s.dtype.is_integer)
               for s in specs.values())


def parse_examples(serialized: tf.Tensor, specs: Mapping[str, tf.TensorSpec]) -> dict[str, tf.Tensor]:
    """A batch of serialized tf.Example protos -> {input name: tensor of its spec}: every input is
    a feature of that name holding its values, flattened (floats as float_list, integers as
    int64_list); a missing feature is an error."""
    features = {name: tf.io.FixedLenFeature(s.shape.as_list()[1:], tf.float32 if s.dtype.is_floating else tf.int64)
                for name, s in specs.items()}
    parsed = tf.io.parse_example(serialized, features)
    return {name: tf.cast(parsed[name], s.dtype) for name, s in specs.items()}


def example_bytes(values: Mapping[str, object]) -> bytes:
    """One serialized tf.Example holding `values` ({feature name: numbers, any shape}): what a
    client sends to the `serving_tf_example` signature."""
    feature = {}
    for name, value in values.items():
        array = np.asarray(value).ravel()
        if np.issubdtype(array.dtype, np.floating):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=array.tolist()))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=array.astype(np.int64).tolist()))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
