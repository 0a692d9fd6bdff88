"""A run of the whole pipeline: its settings, presets, data, networks and stages.

    config.py    RunConfig: nested settings (data, model, train, affinity, selection, evaluation, runtime)
    presets.py   PRESETS: demo, celeba_sample, celeba
    data.py      load_data, batches
    networks.py  build_network, fit, train_network, evaluate_per_task
    rundir.py    RunDir: every path and model name of a run directory
    seeds.py     network_seed, partition_seed: every seed derived from the run's one seed
    stages.py    run() and the six stages over a run directory

    from tag_tf.run import PRESETS, run
    run(PRESETS["demo"].replace(epochs=2), "runs/demo")

The package loads its modules on first use (`tag_tf.run.run` imports the stages), so that the
stages below it (the report, the exporter) can use `RunDir` without importing the stages.
"""

import importlib

_HOMES = {
    "config": ("DATASETS", "RunConfig"),
    "data": ("RunData", "batches", "load_data"),
    "networks": ("build_network", "evaluate_per_task", "fit", "train_network"),
    "presets": ("PAPER_CELEBA_TASKS", "PRESETS"),
    "rundir": ("RunDir",),
    "seeds": ("network_seed", "partition_seed"),
    "stages": ("STAGES", "RunReport", "run"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'tag_tf.run' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tag_tf.run.{_MODULE_OF[name]}"), name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
