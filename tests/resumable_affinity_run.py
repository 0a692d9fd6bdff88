"""An affinity run with keras.callbacks.BackupAndRestore, for tests/test_resume.py.

    python tests/resumable_affinity_run.py --backup_dir=B --out=result.json [--pause_at_step=N] [--mode=M]

With --pause_at_step the run prints PAUSED after that many steps and waits to be killed.
Op determinism is on and the data order is fixed: an uninterrupted run and a killed-and-resumed
run must end with the same affinity matrix, standard errors and bootstrap blocks (with
--mode=group_lookahead, the candidate groups' too), and collect at the same steps (the adaptive schedule, with settings that thin it within the run's 30 steps).
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from tag_tf.affinity import AffinityConfig  # noqa: E402
from tag_tf.data import synthetic  # noqa: E402
from tag_tf.models import build_multitask_model, celeba_resnet_trunk  # noqa: E402
from tag_tf.training import AffinitySteps  # noqa: E402

flags.DEFINE_string("backup_dir", None, "BackupAndRestore directory (none: no backup).")
flags.DEFINE_string("out", None, "Where to write the result JSON.", required=True)
flags.DEFINE_integer("pause_at_step", 0, "Print PAUSED after this many steps and wait to be killed.")
flags.DEFINE_string("mode", "exact", "AffinityConfig.mode.")
FLAGS = flags.FLAGS


class PauseAtStep(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            print("PAUSED", flush=True)
            time.sleep(600)


def main(argv):
    del argv
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(0)
    data = synthetic.planted_groups(num_groups=2, tasks_per_group=2, num_examples=400, image_size=16, seed=0)
    batches = data.splits["train"].batch(32)  # 10 steps per epoch, the same order every epoch
    model = build_multitask_model(celeba_resnet_trunk(16, filters=8), data.tasks,
                                  affinity=AffinityConfig(mode=FLAGS.mode, every_n_steps="auto", auto_min_samples=4, auto_precision=1.0,
                                                          auto_max_interval=4, bootstrap_blocks=8))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    model.build((None, 16, 16, 3))
    collected = AffinitySteps()
    callbacks = [collected] + ([keras.callbacks.BackupAndRestore(FLAGS.backup_dir)] if FLAGS.backup_dir else [])
    if FLAGS.pause_at_step:
        callbacks.append(PauseAtStep(FLAGS.pause_at_step))
    model.fit(batches, epochs=3, verbose=0, shuffle=False, callbacks=callbacks)
    result = model.task_affinity()
    with open(FLAGS.out, "w") as f:
        json.dump({"matrix": result.matrix.tolist(), "steps": result.steps, "stderr": result.stderr.tolist(),
                   "epochs": [m.tolist() for m in result.epochs], "blocks": [m.tolist() for m in result.blocks],
                   "collected": collected.steps,
                   "group_blocks": [[m.tolist(), result.group_block_counts[g][t].tolist()]
                                    for g, values in result.group_blocks.items() for t, m in values.items()],
                   "iterations": int(model.optimizer.iterations.numpy())}, f)


if __name__ == "__main__":
    app.run(main)
