"""The text a pipeline run ends with: TAG's groupings, every grouping's total error and ΔMTL, every
task's error, dense metrics, time to choose and TAG against each baseline paired by seed. Read from
a run directory's metrics.json and selection.json (`experiments.tag_pipeline` prints it)."""

from __future__ import annotations

from tag_tf.evaluation import grouped
from tag_tf.selection import format_groups, stability_text


def format_summary(metrics: dict, selections, planted) -> str:
    """TAG's groupings (and whether they equal the planted one, if any), a table of every
    grouping's total error (mean ± std over seeds), every task's error, and TAG against each
    baseline seed by seed (95% t intervals)."""
    planted_set = {frozenset(g) for g in planted} if planted else None
    lines = []
    for grouping in selections:
        groups = str(grouping)
        same = "" if planted_set is None else (
            "  = planted" if {frozenset(g) for g in grouping.groups} == planted_set else "  != planted")
        lines.append(f"TAG grouping, k={grouping.budget}: {groups}  (score {grouping.score:.4f}, "
                     f"{'optimal' if grouping.optimal else 'not proven optimal'}, {stability_text(grouping)}){same}")
    if planted:
        lines.append("Planted grouping:     " + format_groups(planted))
    rows = grouped.summarize(metrics["groupings"])
    width = max(len(r["name"]) for r in rows)
    lines += ["", f"{'grouping':<{width}}  networks  {'total test error (%)':<44}  ΔMTL vs single-task  "
                  "time to choose (s)", "-" * (width + 97)]
    for row in rows:
        text = grouped.format_row(row)
        lines.append(f"{row['name']:<{width}}  {row['networks']:>8}  {text['total_error']:<44}  "
                     f"{text['delta_mtl']:>19}  {text['time_to_choose']:>18}")
    named = [row for row in metrics["groupings"] if "_seed" not in row["name"]]
    lines += ["", "Test error per task (%):", f"{'task':<{width}}  " + "  ".join(f"{r['name']:>15}" for r in named)]
    for task in metrics["tasks"]:
        lines.append(f"{task:<{width}}  " + "  ".join(f"{grouped.format_task_error(r, task):>15}" for r in named))
    header, dense = grouped.dense_metric_table(metrics)
    if dense:
        widths = [max(len(r[c]) for r in [header, *dense]) for c in range(len(header))]
        lines += ["", "Dense metrics (test):"] + ["  ".join(v.rjust(w) for v, w in zip(r, widths))
                                                  for r in [header, *dense]]
    if grouped.headline(metrics) == "delta_mtl":
        lines += ["", "Dense tasks: ΔMTL vs single-task is the headline (their errors are in different units)."]
    speed = grouped.time_to_choose(metrics["groupings"])
    if speed:
        lines += ["", "Time to choose (TAG: its affinity run and the solver; HOA: its single and pair networks and "
                      "the solver), this run:"] + ["  " + line for line in speed]
    comparisons = grouped.format_comparisons(metrics.get("comparisons", []))
    if comparisons:
        lines += ["", f"TAG − baseline, paired by seed (mean [95% t interval]): "
                      f"{grouped.comparison_caption(grouped.headline(metrics))}:"]
        lines += [f"  {tag} vs {baseline:<{width}}  {difference:<30}  {verdict}"
                  for tag, baseline, difference, verdict in comparisons]
    return "\n".join(lines)
