"""Recipes: the user's own tasks, model and data for the whole pipeline.

A recipe is a Python file (or an importable module) that defines

    TASKS                  a list of `Task`s (or names, for binary tasks)
    build_model(tasks)     -> a keras.Model whose outputs are a dict keyed by exactly those tasks'
                           names; called for the affinity network and for every group's network
    load_data()            -> {"train", "validation", "test": tf.data.Dataset of unbatched
                           (inputs, {task: label})}; inputs as the model takes them (a tensor, or
                           a dict of named inputs)
    optimizer()            optional -> a fresh keras optimizer with a lookahead rule (SGD, Adam,
                           AdamW); without it, the run's SGD(learning_rate, momentum)

and is run with `python -m experiments.tag_pipeline --recipe=path/to/recipe.py --run_dir=...`
(the run's data settings, trunk and planted-data settings do not apply; training, affinity,
selection and evaluation settings do). Examples: experiments/recipes/.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "broken.py")
>>> _ = open(path, "w").write("TASKS = ['a']\\n")
>>> load_recipe(path)
Traceback (most recent call last):
...
ValueError: Recipe ...broken.py defines no build_model, load_data: a recipe needs TASKS, build_model(tasks) and load_data().
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import os
from typing import Callable

import keras
import tensorflow as tf

from tag_tf.tasks import Task, as_tasks

SPLITS = ("train", "validation", "test")
REQUIRED = ("TASKS", "build_model", "load_data")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A loaded recipe (see the module docstring)."""

    source: str
    tasks: list[Task]
    build_model_fn: Callable
    load_data_fn: Callable
    optimizer_fn: Callable | None = None

    def build_model(self, tasks: list[Task]) -> keras.Model:
        """The recipe's model for `tasks`, checked to output exactly those tasks."""
        model = self.build_model_fn(tasks)
        if not isinstance(model, keras.Model):
            raise ValueError(f"Recipe {self.source}: build_model returned {type(model).__name__}, not a keras.Model.")
        names = [t.name for t in tasks]
        outputs = getattr(model, "output", None) if getattr(model, "inputs", None) else None
        if isinstance(outputs, dict) and sorted(outputs) != sorted(names):
            raise ValueError(f"Recipe {self.source}: build_model({names}) returned outputs for {sorted(outputs)}; "
                             f"it must return exactly the tasks it is given.")
        return model

    def load_data(self) -> dict[str, tf.data.Dataset]:
        """The splits, checked to hold a label for every task."""
        splits = self.load_data_fn()
        if not isinstance(splits, dict) or sorted(splits) != sorted(SPLITS):
            keys = sorted(splits) if isinstance(splits, dict) else type(splits).__name__
            raise ValueError(f"Recipe {self.source}: load_data() must return a dict with {list(SPLITS)}, got {keys}.")
        names = [t.name for t in self.tasks]
        for split, dataset in splits.items():
            spec = dataset.element_spec if isinstance(dataset, tf.data.Dataset) else None
            labels = spec[1] if isinstance(spec, tuple) and len(spec) == 2 else None
            if not isinstance(labels, dict):
                raise ValueError(f"Recipe {self.source}: the {split!r} split must be a tf.data.Dataset of unbatched "
                                 f"(inputs, {{task: label}}), got {spec!r}.")
            missing = [n for n in names if n not in labels]
            if missing:
                raise ValueError(f"Recipe {self.source}: the {split!r} split has no label for task(s) {missing} "
                                 f"(its labels: {sorted(labels)}).")
        return splits

    def optimizer(self, default: Callable[[], keras.optimizers.Optimizer]) -> keras.optimizers.Optimizer:
        """A fresh optimizer: the recipe's, or `default()`."""
        return (self.optimizer_fn or default)()


@functools.cache
def load_recipe(source: str) -> Recipe:
    """The recipe in the Python file `source` (a path) or the module `source` (a dotted name)."""
    if source.endswith(".py") or os.path.sep in source:
        if not os.path.isfile(source):
            raise ValueError(f"Recipe file {source!r} does not exist.")
        name = "tag_tf_recipe_" + os.path.splitext(os.path.basename(source))[0]
        spec = importlib.util.spec_from_file_location(name, source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as error:
            raise ValueError(f"Recipe module {source!r} cannot be imported: {error}.") from None
    missing = [name for name in REQUIRED if not hasattr(module, name)]
    if missing:
        raise ValueError(f"Recipe {source} defines no {', '.join(missing)}: a recipe needs TASKS, build_model(tasks) "
                         f"and load_data().")
    return Recipe(source, as_tasks(module.TASKS), module.build_model, module.load_data,
                  getattr(module, "optimizer", None))
