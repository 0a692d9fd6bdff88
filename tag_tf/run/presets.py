"""Named settings: `PRESETS[name]` is a complete `RunConfig`.

    demo           planted texture images (tag_tf.data.textures) with 3 groups of 3 tasks, each
                   group's factor a pair of textures: every network trains on the first 480
                   training images (160 labels per task, each task labelled on its own third) and is
                   measured on 1,000 validation and 1,000 test images (10,000 drawn); a trunk of 4
                   channels (a group's pair needs 2, all three pairs 6), SGD(0.1) on a cosine
                   schedule with GradNorm loss balancing, 30 epochs keeping the best validation
                   epoch; every network trained with 3 seeds.
                   A preset's train_examples is a cut of its own data: give train_examples=0 (all)
                   when you put other data under it (the command line does that by itself)
    dense_scenes   rendered scenes (tag_tf.data.scenes): segmentation, depth, normals, edges and two
                   unrelated classification tasks, 16x16, hard sharing with a decoder per task; the
                   single-task baseline for ΔMTL: a few minutes on 2 cores
    celeba_sample  the 10,000-image CelebA sample (../shared/data/celeba_sample), the paper's 9 tasks
    celeba         the full CelebA through tfds, the paper's 9 tasks, 100 epochs; affinity every 40
                   steps (enough samples for the matrix; BENCHMARKS.md), XLA

>>> PRESETS["demo"].data.dataset, PRESETS["demo"].selection.num_groups
('planted_textures', (3,))
>>> PRESETS["celeba"].affinity.every_n_steps
40
"""

from __future__ import annotations

import os

from tag_tf.affinity import AffinityConfig
from tag_tf.run.config import (DataConfig, EvaluationConfig, ModelConfig, RunConfig, RuntimeConfig, SelectionConfig,
                               TrainConfig)

# The nine CelebA attributes of the TAG paper.
PAPER_CELEBA_TASKS = (
    "5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Brown_Hair", "Goatee",
    "Mustache", "No_Beard", "Rosy_Cheeks", "Wearing_Hat",
)
SHARED_CELEBA_SAMPLE = os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "celeba_sample"))

PRESETS = {
    "demo": RunConfig(
        data=DataConfig(dataset="planted_textures", image_size=16, num_examples=10000, train_examples=480),
        model=ModelConfig(trunk_filters=4, bn_momentum=0.9),
        train=TrainConfig(epochs=30, learning_rate=0.1, momentum=0.0, lr_schedule="cosine", patience=30,
                          balancer="gradnorm"),
        selection=SelectionConfig(num_groups=(3,)),
        evaluation=EvaluationConfig(random_seeds=3, eval_seeds=3),
    ),
    "dense_scenes": RunConfig(
        data=DataConfig(dataset="scenes", image_size=16, num_examples=600),
        model=ModelConfig(architecture="hard_sharing", head_units=16, trunk_filters=8, bn_momentum=0.9),
        train=TrainConfig(epochs=6, batch_size=32, learning_rate=0.02, momentum=0.9, patience=2),
        selection=SelectionConfig(num_groups=(2, 3)),
        evaluation=EvaluationConfig(baselines=("all_in_one", "single_task"), eval_seeds=1),
    ),
    "celeba_sample": RunConfig(
        data=DataConfig(dataset="celeba_folder", celeba_dir=SHARED_CELEBA_SAMPLE, tasks=PAPER_CELEBA_TASKS,
                        image_size=64, cache=True),
        train=TrainConfig(epochs=5),
    ),
    "celeba": RunConfig(
        data=DataConfig(dataset="celeba_tfds", tasks=PAPER_CELEBA_TASKS, image_size=64),
        train=TrainConfig(epochs=100, batch_size=256),
        affinity=AffinityConfig(every_n_steps=40),
        runtime=RuntimeConfig(jit_compile=True),
    ),
}
