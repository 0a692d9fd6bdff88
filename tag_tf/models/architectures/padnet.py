"""PAD-Net (Xu et al. 2018, "PAD-Net: Multi-Tasks Guided Prediction-and-Distillation Network for
Simultaneous Depth Estimation and Scene Parsing"), the decoder-focused architecture: initial task
predictions from the shared features, multi-modal distillation between their features, final
predictions.

    features = backbone(x)                                             shared
    F_t      = refine_t(features)                                      Conv3x3 + ReLU (Dense on flat features)
    initial  = prediction_t(F_t)                                       output "<t>__initial" (deep supervision)
    D_t      = F_t + Σ_{s≠t} conv_{s→t}(F_s) ⊙ σ(attention_{s→t}(F_s))  the distillation's attention-gated messages
    output_t = task_head_t(D_t)                                        as in hard_sharing

The distillation is the attention-guided variant (Xu et al.'s third module, the one Vandenhende
et al. 2021 re-implement): a message from task s to task t is a convolution of s's features gated
per pixel and channel by a sigmoid attention map computed from them.

Deep supervision. The initial predictions are model outputs keyed `<task>__initial`, trained with
the same `Task` (a copy renamed, `with_initial_tasks`) on the same labels (`with_initial_labels`
copies them): to `wrap` and the training step they are ordinary tasks, so no part of the library
needs to know about them. They therefore also appear in the fit logs, in `variable_roles()`, in a
measured affinity matrix (rows and columns of their own) and in an export (served like any head).
`deep_supervision=False` leaves them out (the distillation still reads the refined features), for
the pipeline, whose recipes must return exactly the tasks they are given.

Roles after `wrap`: the backbone and every task's refinement are shared (every final output reads
every task's refined features through the messages); a task's initial prediction layer belongs to
`<task>__initial`; the messages into a task and its decoder belong to the task.

>>> import numpy as np
>>> from tag_tf.models import mlp_trunk, wrap
>>> from tag_tf.tasks import Task
>>> tasks = [Task("a"), Task("b", "regression")]
>>> model = wrap(padnet(mlp_trunk(3, hidden=(4,)), tasks, channels=2), with_initial_tasks(tasks))
>>> [t.name for t in model.tasks]
['a', 'b', 'a__initial', 'b__initial']
>>> model.variable_roles()["shared"]
['dense_0/kernel', 'dense_0/bias', 'a_refine/kernel', 'a_refine/bias', 'b_refine/kernel', 'b_refine/bias']
>>> model.variable_roles()["b__initial"]
['b__initial_out/kernel', 'b__initial_out/bias']
>>> labels = with_initial_labels({"a": np.array([1, 0]), "b": np.array([0.5, 2.0])}, tasks)
>>> sorted(labels), labels["b__initial"].tolist()
(['a', 'a__initial', 'b', 'b__initial'], [0.5, 2.0])
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import keras
from keras import layers

from tag_tf.models.architectures.parts import backbone_features, input_size, prediction, task_head
from tag_tf.tasks import Task, as_tasks

INITIAL_SUFFIX = "__initial"


def with_initial_tasks(tasks: Iterable[Task | str]) -> list[Task]:
    """The tasks, then for each a copy named `<task>__initial` (same kind, classes, weight, ...):
    the tasks to `wrap` a PAD-Net with deep supervision with."""
    tasks = as_tasks(tasks)
    return tasks + [dataclasses.replace(t, name=t.name + INITIAL_SUFFIX) for t in tasks]


def with_initial_labels(labels: dict, tasks: Iterable[Task | str]) -> dict:
    """`labels` ({task: label}) with each task's label also under `<task>__initial`; for a
    `tf.data` pipeline: `dataset.map(lambda x, y: (x, with_initial_labels(y, tasks)))`."""
    return {**labels, **{t.name + INITIAL_SUFFIX: labels[t.name] for t in as_tasks(tasks)}}


def padnet(backbone: keras.Model, tasks: Iterable[Task | str], *, channels: int = 32, deep_supervision: bool = True,
           name: str = "padnet") -> keras.Model:
    """A PAD-Net: `{task: final output}`, and `{<task>__initial: initial output}` with
    `deep_supervision` (see the module docstring).

    Args:
      backbone: as for `hard_sharing` (a spatial map for dense tasks; with one, every task's
        features are maps and flat tasks pool them in their heads).
      tasks: two or more tasks.
      channels: width of every task's features, messages and decoder.
      deep_supervision: output the initial predictions too.
      name: the model's name.
    """
    tasks = as_tasks(tasks)
    if len(tasks) < 2:
        raise ValueError(f"padnet distils between two or more tasks, got {[t.name for t in tasks]}.")
    inputs, features = backbone_features(backbone, tasks)
    size = input_size(inputs)
    refined = {t.name: _project(features, channels, f"{t.name}_refine", activation="relu") for t in tasks}
    outputs = {}
    for task in tasks:
        messages = [_message(refined[source.name], channels, f"{task.name}_from_{source.name}")
                    for source in tasks if source is not task]
        distilled = layers.Add(name=f"{task.name}_distilled")([refined[task.name], *messages])
        outputs[task.name] = task_head(distilled, task, channels, task.name, size)
    if deep_supervision:
        for task in tasks:
            initial = task.name + INITIAL_SUFFIX
            outputs[initial] = prediction(refined[task.name], task, initial, size)
    return keras.Model(inputs, outputs, name=name)


def _project(x, units: int, name: str, activation=None, use_bias=True):
    """Conv3x3 on a map, Dense on flat features."""
    if len(x.shape) == 4:
        return layers.Conv2D(units, 3, padding="same", activation=activation, use_bias=use_bias, name=name)(x)
    return layers.Dense(units, activation=activation, use_bias=use_bias, name=name)(x)


def _message(source_features, units: int, name: str):
    """conv(F_s) ⊙ sigmoid(attention(F_s)): Xu et al.'s attention-guided message."""
    attention = _project(source_features, units, f"{name}_attention", activation="sigmoid", use_bias=False)
    value = _project(source_features, units, f"{name}_message", use_bias=False)
    return layers.Multiply(name=f"{name}_gated")([value, attention])
