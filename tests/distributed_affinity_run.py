"""One affinity run under a chosen strategy, for tests/test_distribute.py (a fresh process each,
since logical devices and TF_CONFIG must be set before TensorFlow starts).

    python tests/distributed_affinity_run.py --strategies=default,mirrored --replicas=2 --out=result.json
    TF_CONFIG=... python tests/distributed_affinity_run.py --strategies=multi_worker --out=w0.json

Under each strategy in turn, in this one process (so that 1 and N replicas are compared on the same
machine state), trains an MLP (no batch normalisation, so 1 and N replicas compute the same
function) with exact affinity on the same global batches of planted tabular data, and writes
{strategy: {"matrix", "stderr", "loss", ...}} to --out. With --balancers, one run per balancer instead
(affinity every 2 steps, so that both train steps run), each writing its matrix, the balancer's
state and the weights' sum: {strategy: {balancer: {...}}}.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_list("strategies", ["default"], "tag_tf.training.distribute strategy names, trained one after the other.")
flags.DEFINE_integer("replicas", 1, "Logical CPU devices for the mirrored strategy.")
flags.DEFINE_enum("loop", "fit", ["fit", "custom"], "model.fit or tag_tf.training.fit_distributed.")
flags.DEFINE_list("balancers", [], "Loss balancers (tag_tf.balancing names) to run one by one.")
flags.DEFINE_string("out", None, "Where to write the result JSON.", required=True)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tag_tf.training import distribute

    devices = distribute.split_cpu(FLAGS.replicas) if "mirrored" in FLAGS.strategies else None
    import keras
    import tensorflow as tf

    from tag_tf.affinity import AffinityConfig
    from tag_tf.data import synthetic
    from tag_tf.models import build_multitask_model, mlp_trunk
    from tag_tf.training import fit_distributed

    # strategies first: MultiWorkerMirroredStrategy must be set up before TensorFlow runs anything
    strategies = {name: distribute.strategy_from_name(name, devices=devices if name == "mirrored" else None)
                  for name in FLAGS.strategies}
    data = synthetic.planted_groups_tabular(num_groups=2, tasks_per_group=2, num_examples=400, seed=0)
    # some labels missing, unevenly, so that per-replica label counts differ
    train = data.splits["train"].map(
        lambda x, y: (x, {**y, "g0_t0": tf.where(x[0] > 0.5, -1, y["g0_t0"])}))
    batches = train.batch(32, drop_remainder=True)

    def train_once(strategy, affinity, balancer=None):
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

    def train_all(strategy):
        if not FLAGS.balancers:
            return train_once(strategy, AffinityConfig(every_n_steps=1))[1]
        from tag_tf.balancing import balancer_from_name

        output = {}
        for name in FLAGS.balancers:
            model, output[name] = train_once(strategy, AffinityConfig(every_n_steps=2),
                                             balancer_from_name(name))
            state = [v for v in model.weights if v.name in ("gradnorm_weights", "log_variances")]
            output[name]["state"] = state[0].numpy().tolist() if state else None
        return output

    output = {name: train_all(strategy) for name, strategy in strategies.items()}
    with open(FLAGS.out, "w") as f:
        json.dump(output, f)


if __name__ == "__main__":
    app.run(main)
