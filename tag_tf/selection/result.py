"""The result of a selection: `Grouping`, and the `selection.json` file that holds one per budget.

>>> g = Grouping(groups=(("a", "b"), ("a", "c")), assignment={"a": 0, "b": 0, "c": 1},
...              score=2.0, optimal=True, upper_bound=2.0, method="dp", seconds=0.0, budget=2)
>>> g.served_by("c"), g.gap
(('a', 'c'), 0.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from tag_tf.utils.io import read_json, write_json_atomic
from tag_tf.selection.checks import _check_choice

SENSES = ("maximize", "minimize")


def format_groups(groups: Sequence[Sequence[str]]) -> str:
    """Groups as text, the one way every page and log writes them: `{a, b} {c}`.

    >>> format_groups([("a", "b"), ("c",)])
    '{a, b} {c}'
    """
    return " ".join("{" + ", ".join(group) + "}" for group in groups)


@dataclasses.dataclass(frozen=True)
class Grouping:
    """A selection of networks and the network serving each task.

    Attributes:
      groups: the chosen groups, each a tuple of task names in task order.
      assignment: task name -> index into `groups` of the group serving it.
      score: total served score (`select_groups`) or total loss (`select_from_costs`).
      optimal: True when `score` is proven optimal (to a relative 1e-6 for the MILP).
      upper_bound: a proven bound on the best achievable score: no grouping scores above it
        (for sense "minimize", no grouping's total loss is below it).
      method: the solver that produced it: "dp", "milp", "heuristic" or "brute_force".
      seconds: wall-clock time of the selection.
      budget: the number of networks (or the cost budget for `select_from_costs`).
      sense: "maximize" (affinity scores) or "minimize" (losses).
      stability: the share of bootstrap resamples of the affinity samples that select this same
        grouping (`tag_tf.selection.stability`); None when not measured.

    >>> g = Grouping(groups=(("a", "b"), ("c",)), assignment={"a": 0, "b": 0, "c": 1},
    ...              score=1.5, optimal=True, upper_bound=1.5, method="dp", seconds=0.0, budget=2)
    >>> Grouping.from_json(g.to_json()) == g
    True
    >>> g.served_by("c"), str(g)
    (('c',), '{a, b} {c}')
    """

    groups: tuple[tuple[str, ...], ...]
    assignment: dict[str, int]
    score: float
    optimal: bool
    upper_bound: float
    method: str
    seconds: float
    budget: float
    sense: str = "maximize"
    stability: float | None = None

    @property
    def gap(self) -> float:
        """Distance from `score` to `upper_bound` (0 when optimal)."""
        return abs(self.upper_bound - self.score)

    def served_by(self, task: str) -> tuple[str, ...]:
        """The group serving `task`."""
        return self.groups[self.assignment[task]]

    def __str__(self) -> str:
        """The groups as `format_groups` writes them: `{a, b} {c}`."""
        return format_groups(self.groups)

    def to_json(self) -> dict:
        return {
            "groups": [list(g) for g in self.groups],
            "assignment": dict(self.assignment),
            "score": self.score,
            "optimal": self.optimal,
            "upper_bound": self.upper_bound,
            "method": self.method,
            "seconds": self.seconds,
            "budget": self.budget,
            "sense": self.sense,
            "stability": self.stability,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> "Grouping":
        groups = tuple(tuple(str(t) for t in g) for g in data["groups"])
        assignment = {str(t): int(i) for t, i in data["assignment"].items()}
        for task, index in assignment.items():
            if not 0 <= index < len(groups) or task not in groups[index]:
                raise ValueError(f"assignment {task!r} -> {index} does not name a group holding {task!r}")
        sense = _check_choice(data.get("sense", "maximize"), SENSES, "sense")
        return cls(groups=groups, assignment=assignment, score=float(data["score"]),
                   optimal=bool(data["optimal"]), upper_bound=float(data["upper_bound"]),
                   method=str(data["method"]), seconds=float(data["seconds"]),
                   budget=data["budget"], sense=sense,
                   stability=None if data.get("stability") is None else float(data["stability"]))


def save_selection(path: str, tasks: Sequence[str], groupings: Sequence[Grouping]) -> None:
    """Write `selection.json` atomically: ``{"tasks": [...], "selections": [grouping, ...]}``.

    >>> import os, tempfile
    >>> from tag_tf.selection import select_groups
    >>> g = select_groups([[0.0, 1.0], [1.0, 0.0]], 1, tasks=["a", "b"])
    >>> path = os.path.join(tempfile.mkdtemp(), "selection.json")
    >>> save_selection(path, ["a", "b"], [g])
    >>> load_selection(path)[1][0].groups
    (('a', 'b'),)
    """
    write_json_atomic(path, {"tasks": list(tasks), "selections": [g.to_json() for g in groupings]})


def load_selection(path: str) -> tuple[list[str], list[Grouping]]:
    """Read a `selection.json` written by `save_selection`: (tasks, groupings).

    >>> import os, tempfile
    >>> from tag_tf.selection import select_groups
    >>> path = os.path.join(tempfile.mkdtemp(), "selection.json")
    >>> save_selection(path, ["a"], [select_groups([[0.0]], 1, tasks=["a"])])
    >>> tasks, groupings = load_selection(path)
    >>> tasks, groupings[0].assignment
    (['a'], {'a': 0})
    """
    data = read_json(path)
    return list(data["tasks"]), [Grouping.from_json(g) for g in data["selections"]]
