"""One affinity run under a chosen strategy, for tests/test_distribute.py (a fresh process each,
since logical devices and TF_CONFIG must be set before TensorFlow starts).

    python tests/distributed_affinity_run.py --strategy=mirrored --replicas=2 --out=result.json
    TF_CONFIG=... python tests/distributed_affinity_run.py --strategy=multi_worker --out=w0.json

Trains an MLP (no batch normalisation, so 1 and N replicas compute the same function) with exact
affinity on the same global batches of planted tabular data, and writes the affinity matrix and
its standard errors and the final loss to --out. With --balancers, one run per balancer instead (affinity every 2 steps,
so that both train steps run), each writing its matrix, the balancer's state and the weights' sum.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"], "Strategy.")
flags.DEFINE_integer("replicas", 1, "Logical CPU devices for the mirrored strategy.")
flags.DEFINE_enum("loop", "fit", ["fit", "custom"], "model.fit or tag_tf.training.fit_distributed.")
flags.DEFINE_list("balancers", [], "Loss balancers (tag_tf.balancing names) to run one by one.")
flags.DEFINE_string("out", None, "Where to write the result JSON.", required=True)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tag_tf import distribute

    devices = distribute.split_cpu(FLAGS.replicas) if FLAGS.strategy == "mirrored" else None
    import keras
    import tensorflow as tf

    from tag_tf.affinity import AffinityConfig
    from tag_tf.data import synthetic
    from tag_tf.models import build_multitask_model, mlp_trunk
    from tag_tf.training import fit_distributed

    strategy = distribute.strategy_from_name(FLAGS.strategy, devices=devices)
    data = synthetic.planted_groups_tabular(num_groups=2, tasks_per_group=2, num_examples=400, seed=0)
    # some labels missing, unevenly, so that per-replica label counts differ
    train = data.splits["train"].map(
        lambda x, y: (x, {**y, "g0_t0": tf.where(x[0] > 0.5, -1, y["g0_t0"])}))
    batches = train.batch(32, drop_remainder=True)

    def train_once(affinity, balancer=None):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = build_multitask_model(mlp_trunk(32, hidden=(16,)), data.tasks, affinity=affinity,
                                          balancer=balancer)
            model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
        if FLAGS.loop == "fit":
            history = model.fit(batches, epochs=2, verbose=0, shuffle=False)
        else:
            history = fit_distributed(model, batches, epochs=2)
        result = model.task_affinity()
        return model, {"matrix": result.matrix.tolist(), "stderr": result.stderr.tolist(), "steps": result.steps,
                       "loss": history.history["loss"][-1], "replicas": strategy.num_replicas_in_sync,
                       "kernel_sum": float(sum(float(tf.reduce_sum(v)) for v in model.trainable_variables))}

    if FLAGS.balancers:
        from tag_tf.balancing import balancer_from_name

        output = {}
        for name in FLAGS.balancers:
            model, output[name] = train_once(AffinityConfig(every_n_steps=2), balancer_from_name(name))
            state = [v for v in model.weights if v.name in ("gradnorm_weights", "log_variances")]
            output[name]["state"] = state[0].numpy().tolist() if state else None
    else:
        output = train_once(AffinityConfig(every_n_steps=1))[1]
    with open(FLAGS.out, "w") as f:
        json.dump(output, f)


if __name__ == "__main__":
    app.run(main)
