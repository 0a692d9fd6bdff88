"""Choose networks from a measured affinity matrix.

    python -m experiments.select --affinity=runs/demo/affinity.json --num_groups=2,3,4

Reads the affinity file as a `tag_tf.affinity.TaskAffinity` (tasks, matrix A[source, target]; a
pair without a sample is `null`), runs `tag_tf.selection.select_from_affinity` for the budgets (it
warns about the pairs without samples and takes them as 0; each grouping with its bootstrap
stability when the file keeps the affinity's samples), prints a table and writes
`selection.json` next to the affinity file (atomically): {"tasks": [...], "selections": [one
grouping per budget]}.
"""

from __future__ import annotations

import os

from absl import app, flags, logging

from tag_tf import selection
from tag_tf.affinity import TaskAffinity

FLAGS = flags.FLAGS
flags.DEFINE_string("affinity", None,
                    "affinity.json of a run (tasks, matrix[source][target]; null: no sample).")
flags.DEFINE_list("num_groups", ["2", "3", "4"], "Budgets: the most networks to train, one selection each.")
flags.DEFINE_string("singleton", "zero",
                    f"Score of a task alone in its group: one of {selection.SINGLETON_POLICIES} or a float.")
flags.DEFINE_boolean("overlap", True, "Allow a task in several groups (served by its best one).")
flags.DEFINE_enum("method", "auto", selection.METHODS, "Solver.")
flags.DEFINE_integer("max_group_size", None, "Largest group allowed (default: no limit).")
flags.mark_flag_as_required("affinity")


def parse_singleton(value: str):
    """'zero' | 'forbid' | a float, as `select_groups(singleton=...)` takes it."""
    if value in selection.SINGLETON_POLICIES:
        return value
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"--singleton={value!r}: expected one of {selection.SINGLETON_POLICIES} "
                         f"or a float") from None


def parse_budgets(values) -> list[int]:
    budgets = []
    for value in values:
        try:
            budgets.append(int(value))
        except ValueError:
            raise ValueError(f"--num_groups entry {value!r}: expected integers >= 1, e.g. 2,3,4") from None
    bad = [k for k in budgets if k < 1]
    if bad:
        raise ValueError(f"--num_groups={','.join(values)}: {bad} are below 1; expected integers >= 1")
    if not budgets:
        raise ValueError("--num_groups is empty: expected integers >= 1, e.g. 2,3,4")
    return budgets


def format_table(groupings) -> str:
    """One row per budget: k, groups, score, optimal, bound, seconds, stability ("-": the affinity
    file keeps no samples to bootstrap)."""
    rows = [("k", "groups", "score", "optimal", "bound", "seconds", "stability")]
    for g in groupings:
        groups = str(g)
        rows.append((f"{g.budget:g}", groups, f"{g.score:.6g}", "yes" if g.optimal else "no",
                     f"{g.upper_bound:.6g}", f"{g.seconds:.3f}", "-" if g.stability is None else f"{g.stability:.2f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def main(argv):
    del argv
    try:
        singleton = parse_singleton(FLAGS.singleton)
        budgets = parse_budgets(FLAGS.num_groups)
    except ValueError as error:
        raise app.UsageError(str(error))
    affinity = TaskAffinity.from_json(FLAGS.affinity)
    groupings = selection.select_from_affinity(
        affinity, budgets, overlap=FLAGS.overlap, singleton=singleton,
        max_group_size=FLAGS.max_group_size, method=FLAGS.method)
    for g in groupings:
        logging.info("num_groups=%d: %s in %.2fs", g.budget, g.method, g.seconds)
    print(format_table(groupings))
    path = os.path.join(os.path.dirname(os.path.abspath(FLAGS.affinity)), "selection.json")
    selection.save_selection(path, list(affinity.tasks), groupings)
    logging.info("wrote %s", path)


if __name__ == "__main__":
    app.run(main)
