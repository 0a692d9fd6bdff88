"""Cross-stitch networks (Misra et al. 2016, "Cross-stitch Networks for Multi-task Learning"): one
copy of the encoder per task (a column), and after every stage a cross-stitch unit that mixes the
columns' activations with learned weights; then one decoder per task.

Design choices:
- The stages are cut from the backbone at layers the caller names (`stages`); the last stage ends
  at the backbone's output. A cut must separate the graph (no skip connection across it), as
  residual-block boundaries do. No names: the whole backbone is one stage.
- Every column starts from the backbone's weights (Misra et al. start every column from the same
  pre-trained network); the backbone object itself is not part of the model.
- The units mix per channel (as Vandenhende et al. 2021 do; Misra et al. use one scalar per task
  pair): `out_t = Σ_s α[t, s] ⊙ x_s`, α[t, t] = `self_weight` and α[t, s] = (1 − self_weight)/(T − 1)
  at the start; there is a unit after the last stage too.
- Roles after `wrap`: since every column's activations reach every task through the units, every
  column and every unit is shared (the affinity lookahead moves them all); each decoder belongs to
  its task. (Structural connectivity: an α that has trained to 0 still connects.)

>>> import numpy as np
>>> from tag_tf.models import mlp_trunk, wrap
>>> tasks = ["a", "b"]
>>> network = cross_stitch(mlp_trunk(3, hidden=(4, 4)), tasks, stages=("dense_0",), head_units=2)
>>> model = wrap(network, tasks)
>>> model.variable_roles()["shared"]
['a_dense_0/kernel', 'a_dense_0/bias', 'b_dense_0/kernel', 'b_dense_0/bias', 'cross_stitch_0/alpha', 'a_dense_1/kernel', 'a_dense_1/bias', 'b_dense_1/kernel', 'b_dense_1/bias', 'cross_stitch_1/alpha']
>>> model.get_layer("cross_stitch_0").alpha.numpy()[:, :, 0]
array([[0.9, 0.1],
       [0.1, 0.9]], dtype=float32)
"""

from __future__ import annotations

from typing import Iterable, Sequence

import keras
import numpy as np
from keras import layers

from tag_tf.models.architectures.parts import backbone_features, copy_model, input_size, task_head
from tag_tf.tasks import Task, as_tasks


@keras.saving.register_keras_serializable(package="tag_tf")
class CrossStitch(layers.Layer):
    """A cross-stitch unit: T inputs of the same shape `[..., C]` -> T outputs,
    `out_t = Σ_s alpha[t, s, :] * x_s` (per channel).

    Args:
      self_weight: the initial α[t, t]; the rest of each row starts at (1 − self_weight)/(T − 1),
        so every row sums to 1.
    """

    def __init__(self, self_weight: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= self_weight <= 1.0:
            raise ValueError(f"self_weight must be in [0, 1], got {self_weight!r}.")
        self.self_weight = self_weight

    def build(self, input_shape):
        count, channels = len(input_shape), input_shape[0][-1]
        initial = np.full((count, count), (1.0 - self.self_weight) / max(count - 1, 1), "float32")
        np.fill_diagonal(initial, self.self_weight)
        initial = np.repeat(initial[:, :, None], channels, axis=2)
        self.alpha = self.add_weight(shape=(count, count, channels), name="alpha",
                                     initializer=lambda shape, dtype: keras.ops.cast(initial, dtype))

    def call(self, inputs):
        count = len(inputs)
        return [sum(self.alpha[t, s] * inputs[s] for s in range(count)) for t in range(count)]

    def compute_output_shape(self, input_shape):
        return list(input_shape)

    def get_config(self):
        return {**super().get_config(), "self_weight": self.self_weight}


def split_stages(backbone: keras.Model, stages: Sequence[str]) -> list[keras.Model]:
    """The backbone as consecutive models: the first ends at layer `stages[0]`, the next at
    `stages[1]`, ..., the last at the backbone's output. Raises ValueError for an unknown layer."""
    names = [layer.name for layer in backbone.layers]
    unknown = [s for s in stages if s not in names]
    if unknown:
        raise ValueError(f"stages names layer(s) {unknown} that backbone {backbone.name!r} does not have; its layers: "
                         f"{names}.")
    ends = [backbone.get_layer(s).output for s in stages] + [backbone.output]
    starts = [backbone.inputs[0]] + ends[:-1]
    return [keras.Model(start, end, name=f"stage_{k}") for k, (start, end) in enumerate(zip(starts, ends))]


def cross_stitch(backbone: keras.Model, tasks: Iterable[Task | str], *, stages: Sequence[str] = (),
                 self_weight: float = 0.9, head_units: int = 32, name: str = "cross_stitch") -> keras.Model:
    """A cross-stitch network over `backbone`'s stages: `{task: output}`.

    Args:
      backbone: as for `hard_sharing`; copied once per task (layers renamed `<task>_<layer>`).
      tasks: two or more tasks.
      stages: names of the backbone's layers that end a stage (a unit follows each, and the output).
      self_weight: the units' initial weight of a column's own activations.
      head_units: width of each decoder's hidden layer.
      name: the model's name.
    """
    tasks = as_tasks(tasks)
    if len(tasks) < 2:
        raise ValueError(f"cross_stitch needs two or more tasks to stitch, got {[t.name for t in tasks]}.")
    inputs, _ = backbone_features(backbone, tasks)  # checks the backbone against the tasks
    parts = split_stages(backbone, stages)
    columns = {t.name: [copy_model(part, f"{t.name}_") for part in parts] for t in tasks}
    activations = [inputs] * len(tasks)
    for k in range(len(parts)):
        activations = [columns[t.name][k](x) for t, x in zip(tasks, activations)]
        activations = CrossStitch(self_weight, name=f"cross_stitch_{k}")(activations)
    outputs = {t.name: task_head(x, t, head_units, t.name, input_size(inputs)) for t, x in zip(tasks, activations)}
    return keras.Model(inputs, outputs, name=name)
