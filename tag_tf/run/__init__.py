"""A run of the whole pipeline: its settings, presets, data, networks and stages.

    config.py    RunConfig: nested settings (data, model, train, affinity, selection, evaluation, runtime)
    presets.py   PRESETS: demo, celeba_sample, celeba
    data.py      load_data, batches
    networks.py  build_network, fit, train_network, evaluate_per_task
    stages.py    run() and the six stages over a run directory (tag_tf.rundir.RunDir)

    from tag_tf.run import PRESETS, run
    run(PRESETS["demo"].replace(epochs=2), "runs/demo")
"""

from tag_tf.run.config import DATASETS, RunConfig
from tag_tf.run.data import RunData, batches, load_data
from tag_tf.run.networks import build_network, evaluate_per_task, fit, train_network
from tag_tf.run.presets import PAPER_CELEBA_TASKS, PRESETS
from tag_tf.run.stages import STAGES, RunReport, run

__all__ = ["DATASETS", "PAPER_CELEBA_TASKS", "PRESETS", "STAGES", "RunConfig", "RunData", "RunReport", "batches",
           "build_network", "evaluate_per_task", "fit", "load_data", "run", "train_network"]
