"""Trunks (shared layers) and the multi-task model built on them.

- `celeba_resnet_trunk`: the TAG paper's CelebA trunk, as in the official code
  (google-research/tag, CelebA.ipynb): conv3x3-64 (no bias), BN, ReLU, MaxPool 3 stride 2,
  one residual block of two conv3x3-64 (no bias) + BN with an identity shortcut, ReLU,
  AvgPool 2, Flatten.
- `mlp_trunk`: Dense + ReLU layers, for tabular data.
- `wrap`: any Keras model whose outputs are a dict keyed by task -> `MultiTaskModel`.
- `build_multitask_model`: trunk + one linear head per task -> `MultiTaskModel` (a shortcut).

>>> import numpy as np
>>> from tag_tf.tasks import Task
>>> model = build_multitask_model(mlp_trunk(8, hidden=(16,)), [Task("a"), Task("b", "multiclass", 3)])
>>> {name: tuple(out.shape) for name, out in model(np.zeros((2, 8))).items()}
{'a': (2, 1), 'b': (2, 3)}
"""

from __future__ import annotations

from typing import Iterable, Sequence

import keras
from keras import layers

from tag_tf.affinity import AffinityConfig
from tag_tf.balancing import Balancer
from tag_tf.tasks import Task, as_tasks
from tag_tf.training import MultiTaskModel

HEAD_PREFIX = "head_"


def head_name(task: Task) -> str:
    """Name of the Dense layer that `build_multitask_model` makes `task`'s head.

    >>> head_name(Task("Smiling"))
    'head_Smiling'
    """
    return HEAD_PREFIX + task.name


def celeba_resnet_trunk(image_size: int = 64, filters: int = 64, bn_momentum: float = 0.99,
                        name: str = "trunk", feature_map: bool = False) -> keras.Model:
    """The official TAG CelebA trunk: image float32 [S, S, 3] -> flat features.

    At image_size 64 the output has 15 * 15 * 64 = 14400 features. `bn_momentum` is that of the
    moving statistics (Keras' and the official code's 0.99); short runs of a few hundred steps
    want a smaller value (0.9) so that evaluation sees converged statistics. `feature_map=True`
    ends the trunk at the residual block's output, before the pooling and flattening: a spatial
    map [S', S', filters] (S' = (S - 3) // 2 + 1), what dense decoders (`tag_tf.models.architectures`)
    need. Its two stages end at the layers "pool1" and "block_out".

    >>> celeba_resnet_trunk(16, filters=4, feature_map=True).output_shape
    (None, 7, 7, 4)
    """
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}.")
    image = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv1_1")(image)
    x = layers.BatchNormalization(momentum=bn_momentum, name="bn1_1")(x)
    x = layers.ReLU()(x)
    x = block_input = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv2_1")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="bn2_1")(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv2_2")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="bn2_2")(x)
    x = layers.ReLU(name="block_out")(layers.Add()([x, block_input]))
    if feature_map:
        return keras.Model(image, x, name=name)
    x = layers.AveragePooling2D(2, name="avg_pool")(x)
    features = layers.Flatten()(x)
    return keras.Model(image, features, name=name)


def mlp_trunk(input_dim: int, hidden: Sequence[int] = (64, 64), name: str = "trunk") -> keras.Model:
    """features float32 [input_dim] -> Dense(h) + ReLU for each h in `hidden`."""
    if not isinstance(input_dim, int) or input_dim < 1:
        raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}.")
    if not hidden or any(not isinstance(h, int) or h < 1 for h in hidden):
        raise ValueError(f"hidden must be a non-empty sequence of positive integers, got {hidden!r}.")
    features = keras.Input(shape=(input_dim,), name="features")
    x = features
    for i, units in enumerate(hidden):
        x = layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
    return keras.Model(features, x, name=name)


def wrap(
    model: keras.Model,
    tasks: Iterable[Task | str],
    *,
    affinity: AffinityConfig | None = None,
    balancer: Balancer | None = None,
    shared_variables=None,
    name: str | None = None,
) -> MultiTaskModel:
    """A `MultiTaskModel` around any Keras model whose outputs are a dict keyed by the task names:
    functional (any number of inputs, named or in a dict), or subclassed once it is built (called
    on a batch, or `model.build(...)`; its inputs become float32 `keras.Input`s of the shapes it
    was built with). The layers and variables are the model's own, not copies.

    Args:
      model: the user's model.
      tasks: the tasks (strings become binary tasks), exactly the output keys, in the user's order.
      affinity, balancer: as for `build_multitask_model`.
      shared_variables: the variables (or paths) to take as shared; None: those that two or more
        tasks' outputs depend on (`MultiTaskModel.variable_roles()` shows the result).
      name: the model's name (default: the wrapped model's).

    >>> import numpy as np
    >>> clicks, user = keras.Input((4,), name="clicks"), keras.Input((2,), name="user")
    >>> shared = layers.Dense(8, activation="relu")(layers.Concatenate()([clicks, user]))
    >>> towers = {t: layers.Dense(1, name=f"{t}_out")(layers.Dense(4, name=f"{t}_tower")(shared))
    ...           for t in ("click", "buy")}
    >>> model = wrap(keras.Model({"clicks": clicks, "user": user}, towers), ["click", "buy"])
    >>> model.variable_roles()["buy"]
    ['buy_tower/kernel', 'buy_tower/bias', 'buy_out/kernel', 'buy_out/bias']
    >>> {t: tuple(out.shape) for t, out in model({"clicks": np.zeros((2, 4)), "user": np.zeros((2, 2))}).items()}
    {'click': (2, 1), 'buy': (2, 1)}
    """
    tasks = as_tasks(tasks)
    if not isinstance(model, keras.Model):
        raise ValueError(f"wrap needs a keras.Model, got {type(model).__name__}.")
    if _is_functional(model):
        inputs, outputs = model.input, model.output
    else:
        if not model.built or not model.get_build_config():
            raise ValueError(f"Model {model.name!r} is not built: call it on a batch of inputs (or model.build(...)) "
                             f"before wrapping it, so that its input shapes are known.")
        shapes = model.get_build_config()["input_shape"]
        inputs = _symbolic_inputs(shapes)
        outputs = model(inputs)
    return MultiTaskModel(inputs=inputs, outputs=outputs, tasks=tasks, affinity=affinity, balancer=balancer,
                          shared_variables=shared_variables, name=name or model.name)


def _is_functional(model: keras.Model) -> bool:
    try:
        return bool(model.inputs) and model.outputs is not None
    except (AttributeError, ValueError):
        return False


def _symbolic_inputs(shapes):
    """keras.Inputs (float32) of the given shapes (batch dimension dropped): one, a list, or a dict
    keyed by input name."""
    if isinstance(shapes, dict):
        return {name: keras.Input(tuple(shape)[1:], name=name) for name, shape in shapes.items()}
    if isinstance(shapes, (list, tuple)) and shapes and isinstance(shapes[0], (list, tuple)):
        return [keras.Input(tuple(shape)[1:]) for shape in shapes]
    return keras.Input(tuple(shapes)[1:])


def build_multitask_model(
    trunk: keras.Model,
    tasks: Iterable[Task | str],
    *,
    affinity: AffinityConfig | None = None,
    balancer: Balancer | None = None,
    name: str = "multitask",
) -> MultiTaskModel:
    """A `MultiTaskModel`: the trunk, shared, then one linear head per task.

    Args:
      trunk: a Keras model with one named input (e.g. "image" or "features") and flat outputs.
      tasks: the tasks (strings become binary tasks); the output dict is keyed by their names.
      affinity: measure inter-task affinity during `fit()` (see `tag_tf.affinity`); None (the
        default) trains plainly, collecting nothing.
      balancer: how the task losses become one update (`tag_tf.balancing`); None: equal weights.
      name: the model's name.

    Heads output one logit (binary), K logits (multiclass) or one value (regression), in float32
    whatever the mixed-precision policy.
    """
    tasks = as_tasks(tasks)
    if not isinstance(trunk, keras.Model) or len(trunk.inputs) != 1:
        raise ValueError(f"trunk must be a keras.Model with exactly one input, got {trunk!r}.")
    trunk_input = trunk.inputs[0]
    inputs = keras.Input(shape=trunk_input.shape[1:], dtype=trunk_input.dtype, name=trunk_input.name)
    features = trunk(inputs)
    if len(features.shape) != 2:
        raise ValueError(f"trunk must output flat features [batch, units], got shape {features.shape}.")
    outputs = {
        t.name: layers.Dense(t.output_units, dtype="float32", name=head_name(t))(features) for t in tasks
    }
    return wrap(keras.Model(inputs, outputs, name=name), tasks, affinity=affinity, balancer=balancer)


def inference_flops(model: keras.Model) -> int:
    """Floating-point operations of one example through `model` (inference mode, all its inputs),
    as TensorFlow's profiler counts them (a multiply-add is 2)."""
    import tensorflow as tf
    from tensorflow.python.util import deprecation  # the v1 profiler is the only FLOP counter TF has

    from tag_tf.export.signatures import model_inputs, named_input_specs

    specs = {name: tf.TensorSpec([1, *s.shape[1:]], s.dtype) for name, s in named_input_specs(model).items()}
    graph = tf.function(lambda named: model(model_inputs(model, named), training=False)).get_concrete_function(
        specs).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    with deprecation.silence():
        return int(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)
