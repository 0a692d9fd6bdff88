"""Hard parameter sharing (Caruana 1997; the encoder-based baseline of Vandenhende et al. 2021): one
shared encoder (the backbone), one small decoder per task; and the single-task baselines of the
same encoder.

Roles after `wrap`: the backbone's variables are shared, each decoder belongs to its task.

>>> import numpy as np
>>> from tag_tf.models import mlp_trunk, wrap
>>> from tag_tf.tasks import Task
>>> tasks = [Task("a"), Task("b", "regression")]
>>> model = wrap(hard_sharing(mlp_trunk(4, hidden=(8,)), tasks, head_units=2), tasks)
>>> model.variable_roles()
{'shared': ['dense_0/kernel', 'dense_0/bias'], 'a': ['a_hidden/kernel', 'a_hidden/bias', 'a_out/kernel', 'a_out/bias'], 'b': ['b_hidden/kernel', 'b_hidden/bias', 'b_out/kernel', 'b_out/bias'], 'unused': []}
>>> baseline = single_task(mlp_trunk(4, hidden=(8,)), [tasks[1]], head_units=2)
>>> [v.path for v in baseline.trainable_variables][:2], tuple(baseline(np.zeros((3, 4)))["b"].shape)
(['b_dense_0/kernel', 'b_dense_0/bias'], (3, 1))
"""

from __future__ import annotations

from typing import Iterable

import keras

from tag_tf.models.architectures.parts import backbone_features, copy_model, input_size, task_head
from tag_tf.tasks import Task, as_tasks


def hard_sharing(backbone: keras.Model, tasks: Iterable[Task | str], *, head_units: int = 32,
                 name: str = "hard_sharing") -> keras.Model:
    """The backbone, shared, then `parts.task_head` per task: `{task: output}`.

    Args:
      backbone: a Keras model with one input: one of `tag_tf.models`' trunks, a `keras.applications`
        model (include_top=False) or any model; a spatial map output for dense tasks.
      tasks: the tasks (strings become binary tasks).
      head_units: width of each decoder's hidden layer.
      name: the model's name.
    """
    tasks = as_tasks(tasks)
    inputs, features = backbone_features(backbone, tasks)
    outputs = {t.name: task_head(features, t, head_units, t.name, input_size(inputs)) for t in tasks}
    return keras.Model(inputs, outputs, name=name)


def single_task(backbone: keras.Model, tasks: Iterable[Task | str], *, head_units: int = 32,
                name: str | None = None) -> keras.Model:
    """The single-task baseline of one task: a copy of the backbone (its layers renamed
    `<task>_<layer>`, its weights copied, so that every baseline starts from the same weights and
    none shares them) and the task's decoder, as in `hard_sharing`.

    `tasks`: exactly one task (a list, like every architecture's).
    """
    tasks = as_tasks(tasks)
    if len(tasks) != 1:
        raise ValueError(f"single_task builds the network of one task, got {len(tasks)}: "
                         f"{[t.name for t in tasks]}; build one per task.")
    task = tasks[0]
    return hard_sharing(copy_model(backbone, f"{task.name}_"), tasks, head_units=head_units,
                        name=name or f"single_{task.name}")
