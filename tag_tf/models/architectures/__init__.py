"""Multi-task architectures as Keras models with dict outputs keyed by task name, ready for
`tag_tf.models.wrap` (which finds shared and task-specific variables from the model's structure),
the balancers, the affinity step and export.

| name           | family                   | shared (after `wrap`)                   | per task                   |
|----------------|--------------------------|-----------------------------------------|----------------------------|
| `hard_sharing` | hard sharing             | the backbone                            | a small decoder            |
| `single_task`  | baseline (one task)      | -                                       | a copy of the backbone + decoder |
| `cross_stitch` | encoder-focused, soft    | every task's backbone copy, the units   | a decoder                  |
| `mmoe`         | encoder-focused, tabular | the experts (and a backbone)            | a gate and a tower         |
| `padnet`       | decoder-focused          | the backbone, every task's refinement   | messages in, a decoder; `<task>__initial` its initial head |

Papers: Misra et al. 2016 (cross-stitch), Ma et al. 2018 (MMoE), Xu et al. 2018 (PAD-Net);
the taxonomy (encoder- vs decoder-focused) is Vandenhende et al. 2021, "Multi-Task Learning for
Dense Prediction Tasks: A Survey". Every architecture takes a backbone: one of the project's
trunks (`celeba_resnet_trunk(..., feature_map=True)` for dense tasks, `mlp_trunk`), a
`keras.applications` model (include_top=False) or any one-input Keras model; dense tasks need it
to output a spatial map, flat tasks take either. Decoders are those of `parts.task_head`.

>>> import numpy as np
>>> from tag_tf.models import mlp_trunk, wrap
>>> network = build_architecture("mmoe", mlp_trunk(4, hidden=(8,)), ["a", "b"], num_experts=2)
>>> {t: tuple(out.shape) for t, out in wrap(network, ["a", "b"])(np.zeros((2, 4))).items()}
{'a': (2, 1), 'b': (2, 1)}
>>> build_architecture("mtan", mlp_trunk(4), ["a", "b"])
Traceback (most recent call last):
...
ValueError: Unknown architecture 'mtan'; valid architectures: ['cross_stitch', 'hard_sharing', 'mmoe', 'padnet', 'single_task'].
"""

from __future__ import annotations

from typing import Iterable

import keras

from tag_tf.models.architectures.cross_stitch import CrossStitch, cross_stitch, split_stages
from tag_tf.models.architectures.hard_sharing import hard_sharing, single_task
from tag_tf.models.architectures.mmoe import mmoe
from tag_tf.models.architectures.padnet import INITIAL_SUFFIX, padnet, with_initial_labels, with_initial_tasks
from tag_tf.tasks import Task

ARCHITECTURES = {"cross_stitch": cross_stitch, "hard_sharing": hard_sharing, "mmoe": mmoe, "padnet": padnet,
                 "single_task": single_task}

__all__ = ["ARCHITECTURES", "INITIAL_SUFFIX", "CrossStitch", "build_architecture", "cross_stitch", "hard_sharing",
           "mmoe", "padnet", "single_task", "split_stages", "with_initial_labels", "with_initial_tasks"]


def build_architecture(name: str, backbone: keras.Model, tasks: Iterable[Task | str], **options) -> keras.Model:
    """`ARCHITECTURES[name](backbone, tasks, **options)`; ValueError for an unknown name."""
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}; valid architectures: {sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[name](backbone, tasks, **options)
