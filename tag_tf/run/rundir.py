"""`RunDir`: every path and model name of a run directory, in one place.

    <run>/config.json              the RunConfig
    <run>/affinity.json            TaskAffinity (+ seconds); affinity.partial.json while it runs
    <run>/selection.json           TAG's grouping for every budget k
    <run>/groups/<id>/             one trained network per group: result.json, model.keras, backup/
    <run>/groups/<id>/seed<s>/     the same for its network trained with evaluation seed s >= 1
    <run>/train.json               the groups trained, with their result files
    <run>/metrics.json             every grouping's measures
    <run>/export/<model>/<version> the multi-head SavedModels (`tag_k<k>`), models.config, export.json
    <run>/report/index.html        the report
    <run>/tensorboard/             affinity scalars and images, the selection as text

A group's id is made of its tasks' positions in the run's task order: ("b", "d") of a, b, c, d is
"t1-t3".

>>> run = RunDir("runs/demo")
>>> run.affinity, run.model_name(3)
('runs/demo/affinity.json', 'tag_k3')
>>> run.group_result(["a", "b", "c", "d"], ("b", "d"))
'runs/demo/groups/t1-t3/result.json'
>>> run.group_result(["a", "b", "c", "d"], ("b", "d"), seed=2)
'runs/demo/groups/t1-t3/seed2/result.json'
>>> run.stage_output("export")
'runs/demo/export/export.json'
"""

from __future__ import annotations

import os
from typing import Sequence

from tag_tf.utils.io import read_json

STAGE_OUTPUTS = {"affinity": "affinity.json", "select": "selection.json", "train": "train.json",
                 "evaluate": "metrics.json", "export": os.path.join("export", "export.json"),
                 "report": os.path.join("report", "index.html")}


class RunDir:
    """The files of one run directory (nothing is created by constructing it)."""

    def __init__(self, path: str):
        self.path = str(path)

    def __repr__(self):
        return f"RunDir({self.path!r})"

    def join(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def relative(self, path: str) -> str:
        """`path` relative to the run directory (as the run's JSON files name files)."""
        return os.path.relpath(path, self.path)

    def stage_output(self, stage: str) -> str:
        """The file whose presence means `stage` is done."""
        return self.join(STAGE_OUTPUTS[stage])

    config = property(lambda self: self.join("config.json"))
    affinity = property(lambda self: self.join("affinity.json"))
    affinity_partial = property(lambda self: self.join("affinity.partial.json"))
    affinity_backup = property(lambda self: self.join("affinity.backup"))
    selection = property(lambda self: self.join("selection.json"))
    train = property(lambda self: self.join("train.json"))
    metrics = property(lambda self: self.join("metrics.json"))
    export_dir = property(lambda self: self.join("export"))
    export_summary = property(lambda self: self.join("export", "export.json"))
    models_config = property(lambda self: self.join("export", "models.config"))
    report_dir = property(lambda self: self.join("report"))
    report_index = property(lambda self: self.join("report", "index.html"))
    tensorboard = property(lambda self: self.join("tensorboard"))

    @staticmethod
    def model_name(budget: int) -> str:
        """The name of TAG's grouping for budget k: its metrics row and its exported model."""
        return f"tag_k{budget}"

    @staticmethod
    def group_id(tasks: Sequence[str], group: Sequence[str]) -> str:
        return "-".join(f"t{list(tasks).index(t)}" for t in group)

    def group_dir(self, tasks: Sequence[str], group: Sequence[str], seed: int = 0) -> str:
        """The folder of `group`'s network trained with evaluation seed `seed` (0: the first)."""
        folder = self.join("groups", self.group_id(tasks, group))
        return os.path.join(folder, f"seed{seed}") if seed else folder

    def group_result(self, tasks: Sequence[str], group: Sequence[str], seed: int = 0) -> str:
        return os.path.join(self.group_dir(tasks, group, seed), "result.json")

    def group_model(self, tasks: Sequence[str], group: Sequence[str], seed: int = 0) -> str:
        return os.path.join(self.group_dir(tasks, group, seed), "model.keras")

    def group_backup(self, tasks: Sequence[str], group: Sequence[str], seed: int = 0) -> str:
        return os.path.join(self.group_dir(tasks, group, seed), "backup")

    def trained_networks(self) -> dict[tuple[str, ...], str]:
        """{group: path of its trained network (model.keras)}, from train.json."""
        return {tuple(entry["tasks"]): os.path.join(self.path, os.path.dirname(entry["result"]), "model.keras")
                for entry in read_json(self.train)["groups"]}
