"""`TaskAffinity`: the measured affinities of a run, their precision, and their JSON file.

>>> import numpy as np
>>> result = TaskAffinity(tasks=("a", "b"), matrix=np.array([[np.nan, 0.5], [0.25, np.nan]]), steps=4,
...                       stderr=np.array([[np.nan, 0.1], [0.05, np.nan]]))
>>> result.to_json()["matrix"]           # [source][target]; no sample is null
[[None, 0.5], [0.25, None]]
>>> loaded = TaskAffinity.from_json(result.to_json())
>>> loaded.matrix[1, 0], loaded.stderr[0, 1]
(np.float64(0.25), np.float64(0.1))
>>> grouped = TaskAffinity(tasks=("a", "b"), matrix=np.eye(2), group_affinity={("a", "b"): {"a": 1.5, "b": 1.25}})
>>> grouped.to_json()["group_lookahead"]           # groups by task name
[{'group': ['a', 'b'], 'affinity': {'a': 1.5, 'b': 1.25}, 'stderr': {}}]
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from tag_tf.utils.io import write_json_atomic


@dataclasses.dataclass(frozen=True)
class TaskAffinity:
    """The measured affinities of a run.

    Attributes:
      tasks: task names, in the user's order.
      matrix: float [n, n], `matrix[source, target]`: the mean affinity of a step on `source` onto
        `target` over the run (NaN: no sample): the time-weighted mean of the affinity steps'
        samples, each weighted by the optimizer steps it stands for (`tag_tf.affinity.adaptive`),
        the plain mean when every step or every n-th is sampled. Selection reads the affinity onto
        a task as a column.
      epochs: one [n, n] matrix per epoch (same orientation), the (time-weighted) mean over that epoch.
      steps: the number of affinity steps that went into `matrix`.
      skipped: the number of (step, source, target) samples left out because a loss was zero or
        not finite (sources: tasks, and the candidate groups of mode="group_lookahead").
      stderr: float [n, n] (same orientation): the standard error of each entry of `matrix`, from
        the running weighted variance of its samples and their effective number (NaN below two
        samples); None in files written before it was recorded.
      blocks: (time-weighted) means [n, n] of blocks of consecutive affinity steps, in order (the
        samples the selection stability bootstrap resamples; `tag_tf.selection.stability`); empty
        in older files.
      block_counts: the number of samples behind each entry of each block.
      block_weights: the optimizer steps those samples stand for (Σ w; the bootstrap's weights);
        empty in files written before samples were weighted (their samples all weigh 1).
      group_affinity: mode="group_lookahead": {group (task names): {member: mean Z[G→member]}},
        the lookahead on the group's summed loss onto each of its members (NaN: no sample).
      group_stderr: the standard errors of `group_affinity`'s entries (same keys).
      group_blocks: {group: {member: float [blocks]}}, the means of Z[G→member] in the same blocks
        of consecutive affinity steps as `blocks` (the bootstrap resamples both together; NaN: no
        sample in that block); empty in files written before they were kept.
      group_block_counts: the number of samples behind each of them (same keys, int [blocks]).
      group_block_weights: the optimizer steps those samples stand for (same keys, float [blocks];
        the bootstrap's weights, as `block_weights` for the pairs).
    """

    tasks: tuple[str, ...]
    matrix: np.ndarray
    epochs: tuple[np.ndarray, ...] = ()
    steps: int = 0
    skipped: int = 0
    stderr: np.ndarray | None = None
    blocks: tuple[np.ndarray, ...] = ()
    block_counts: tuple[np.ndarray, ...] = ()
    block_weights: tuple[np.ndarray, ...] = ()
    group_affinity: dict = dataclasses.field(default_factory=dict)
    group_stderr: dict = dataclasses.field(default_factory=dict)
    group_blocks: dict = dataclasses.field(default_factory=dict)
    group_block_counts: dict = dataclasses.field(default_factory=dict)
    group_block_weights: dict = dataclasses.field(default_factory=dict)

    def to_json(self, path: str | None = None) -> dict:
        """The JSON form (task names, matrices as nested lists [source][target], null where no
        sample); written atomically to `path` if given."""
        data = {
            "tasks": list(self.tasks),
            "orientation": "matrix[source][target]",
            "matrix": _nested(self.matrix),
            "epochs": [_nested(m) for m in self.epochs],
            "steps": int(self.steps),
            "skipped": int(self.skipped),
        }
        if self.stderr is not None:
            data["stderr"] = _nested(self.stderr)
        if self.blocks:
            weights = self.block_weights or self.block_counts
            data["blocks"] = [{"mean": _nested(m), "count": np.asarray(c, np.int64).tolist(),
                               "weight": np.asarray(w, np.float64).tolist()}
                              for m, c, w in zip(self.blocks, self.block_counts, weights)]
        if self.group_affinity:
            data["group_lookahead"] = [
                {"group": list(group), "affinity": {t: _number(v) for t, v in values.items()},
                 "stderr": {t: _number(v) for t, v in self.group_stderr.get(group, {}).items()},
                 **({"blocks": {"mean": {t: [_number(v) for v in m] for t, m in self.group_blocks[group].items()},
                                "count": {t: np.asarray(c, np.int64).tolist()
                                          for t, c in self.group_block_counts[group].items()},
                                "weight": {t: np.asarray(w, np.float64).tolist()
                                           for t, w in (self.group_block_weights.get(group)
                                                        or self.group_block_counts[group]).items()}}}
                    if group in self.group_blocks else {})}
                for group, values in self.group_affinity.items()]
        if path is not None:
            write_json_atomic(path, data)
        return data

    @classmethod
    def from_json(cls, data_or_path) -> "TaskAffinity":
        """From `to_json`'s dict or a file holding it (null entries become NaN; files without
        `stderr` or `blocks` load with None and no blocks; blocks without weights weigh their counts)."""
        data = data_or_path
        if isinstance(data_or_path, str):
            with open(data_or_path) as f:
                data = json.load(f)
        blocks = data.get("blocks", [])
        groups = data.get("group_lookahead", [])
        return cls(
            tasks=tuple(data["tasks"]),
            matrix=_array(data["matrix"]),
            epochs=tuple(_array(m) for m in data.get("epochs", [])),
            steps=int(data.get("steps", 0)),
            skipped=int(data.get("skipped", 0)),
            stderr=_array(data["stderr"]) if "stderr" in data else None,
            blocks=tuple(_array(b["mean"]) for b in blocks),
            block_counts=tuple(np.array(b["count"], np.int64) for b in blocks),
            block_weights=tuple(np.array(b.get("weight", b["count"]), np.float64) for b in blocks),
            group_affinity={tuple(g["group"]): _floats(g["affinity"]) for g in groups},
            group_stderr={tuple(g["group"]): _floats(g["stderr"]) for g in groups},
            group_blocks={tuple(g["group"]): {t: _array(m) for t, m in g["blocks"]["mean"].items()}
                          for g in groups if "blocks" in g},
            group_block_counts={tuple(g["group"]): {t: np.array(c, np.int64) for t, c in g["blocks"]["count"].items()}
                                for g in groups if "blocks" in g},
            group_block_weights={tuple(g["group"]): {t: np.array(w, np.float64)
                                                     for t, w in g["blocks"].get("weight", g["blocks"]["count"]).items()}
                                 for g in groups if "blocks" in g},
        )


def _array(nested: list) -> np.ndarray:
    """Nested lists (None: NaN) as a float64 array."""
    return np.array(nested, np.float64)


def _number(value: float) -> float | None:
    """A float, with NaN (no sample) as None."""
    return None if not np.isfinite(value) else float(value)


def _nested(matrix: np.ndarray) -> list:
    """A matrix as nested lists, with NaN (no sample) as None."""
    return [[_number(v) for v in row] for row in np.asarray(matrix)]


def _floats(values: dict) -> dict:
    """{task: value} with None (no sample) as NaN."""
    return {t: float("nan") if v is None else float(v) for t, v in values.items()}
