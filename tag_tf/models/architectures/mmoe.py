"""Multi-gate Mixture-of-Experts (Ma et al. 2018, "Modeling Task Relationships in Multi-task
Learning with Multi-gate Mixture-of-Experts"), for flat (tabular) inputs.

`E` experts (Dense + ReLU) read the features; each task has a softmax gate over the experts
(Dense(E) on the same features) and a tower (Dense + ReLU, then its output layer) on the gated mix
`Σ_e gate_t[e] · expert_e`.

Design choices: one hidden layer per expert and per tower (the paper's experts and towers are
small MLPs); the gates read the features the experts read (the raw input, or a shared backbone's
output). Roles after `wrap`: the experts (and a backbone) are shared; each task's gate and tower
are its own, since only its output depends on them.

>>> import numpy as np
>>> from tag_tf.models import wrap
>>> model = wrap(mmoe(5, ["a", "b"], num_experts=2, expert_units=4, tower_units=3), ["a", "b"])
>>> model.variable_roles()["a"]
['a_gate/kernel', 'a_gate/bias', 'a_tower/kernel', 'a_tower/bias', 'a_out/kernel', 'a_out/bias']
>>> tuple(model(np.zeros((2, 5)))["b"].shape)
(2, 1)
"""

from __future__ import annotations

from typing import Iterable

import keras
from keras import layers

from tag_tf.models.architectures.parts import backbone_features, prediction
from tag_tf.tasks import Task, as_tasks


def mmoe(backbone: keras.Model | int, tasks: Iterable[Task | str], *, num_experts: int = 4, expert_units: int = 16,
         tower_units: int = 8, name: str = "mmoe") -> keras.Model:
    """An MMoE network: `{task: output}`.

    Args:
      backbone: a Keras model with flat outputs (e.g. `mlp_trunk`), shared, whose output the experts
        and gates read; or an integer, the width of the raw feature vector they read (input
        "features").
      tasks: flat tasks (binary, multiclass, regression).
      num_experts, expert_units: how many experts, and the width of each.
      tower_units: width of each task's tower.
      name: the model's name.
    """
    tasks = as_tasks(tasks)
    dense = [t.name for t in tasks if t.is_dense]
    if dense:
        raise ValueError(f"mmoe is for flat outputs; the dense task(s) {dense} need a spatial architecture "
                         f"(hard_sharing, cross_stitch, padnet).")
    if not isinstance(num_experts, int) or num_experts < 1:
        raise ValueError(f"num_experts must be a positive integer, got {num_experts!r}.")
    if isinstance(backbone, int):
        inputs = features = keras.Input((backbone,), name="features")
    else:
        inputs, features = backbone_features(backbone, tasks, flat=True)
    experts = [layers.Dense(expert_units, activation="relu", name=f"expert_{e}")(features) for e in range(num_experts)]
    stacked = layers.Concatenate(axis=1, name="experts")(
        [layers.Reshape((1, expert_units), name=f"expert_{e}_row")(x) for e, x in enumerate(experts)])
    outputs = {}
    for task in tasks:
        gate = layers.Dense(num_experts, activation="softmax", name=f"{task.name}_gate")(features)
        mixed = layers.Dot(axes=(1, 1), name=f"{task.name}_mix")([gate, stacked])  # [B, expert_units]
        tower = layers.Dense(tower_units, activation="relu", name=f"{task.name}_tower")(mixed)
        outputs[task.name] = prediction(tower, task, task.name)
    return keras.Model(inputs, outputs, name=name)
