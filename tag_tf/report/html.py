"""The run report: `report/index.html` in a run directory, and the selection in TensorBoard.

`write_report(run_dir, tasks, test_split)` reads the files of the earlier stages (config.json,
affinity.json, selection.json, train.json, metrics.json, and export/ when the run has one) and
writes `report/`: one self-contained HTML page (inline style, no script, no network) and the PNGs
it shows, side by side, so the folder opens from the file system and can be moved or zipped whole.
The folder is written under a temporary name and renamed into place.

The page holds: the run's settings; the affinity heatmap (A[source, target], the featured
grouping's groups outlined) and the affinity onto each task over training; the selection for every
budget k (table and chart); every grouping's total error and ΔMTL against the baselines, per task
and (dense tasks) every metric; for a few test images, input, ground truth and prediction of every
dense task, and Saliency and GradCAM++ maps of the other tasks, each task from its serving network; where the
SavedModel is and how to query it; how to open TensorBoard. The *featured* grouping is TAG's
grouping best by the run's headline measure (`grouped.headline`: the lowest total test error, or
with dense tasks the highest ΔMTL).

>>> print(html_table(["k", "groups"], [[2, "{a, b} {c}"]]))
<table>
<tr><th>k</th><th>groups</th></tr>
<tr><td>2</td><td>{a, b} {c}</td></tr>
</table>
"""

from __future__ import annotations

import datetime
import html
import json
import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

import tag_tf.training  # noqa: F401  registers MultiTaskModel, so that group networks load
from tag_tf.report import dense_pictures as dense_viz, pictures as viz
from tag_tf.evaluation import grouped
from tag_tf.affinity import TaskAffinity
from tag_tf.export import existing_versions
from tag_tf.utils.io import atomic_directory, read_json
from tag_tf.run.rundir import RunDir
from tag_tf.selection import STABLE, Grouping, format_groups, load_selection, stability_text
from tag_tf.tasks import Task

REPORT_IMAGES = 4
_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 75em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.best { font-weight: bold; background: #e5f5e0; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
.note { color: #666; }
"""


def html_table(header: Sequence[str], rows: Sequence[Sequence], classes: Sequence[Sequence[str]] | None = None) -> str:
    """An HTML table; cells are escaped text, `classes[r][c]` (optional) a CSS class per cell."""
    lines = ["<table>", "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"]
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            css = classes[r][c] if classes else ""
            cells.append(f"<td{f' class={css!r}' if css else ''}>{html.escape(str(value))}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(lines + ["</table>"])


def _figure(folder: str, name: str, figure, alt: str) -> str:
    """Save `figure` as folder/name and return the <img> that shows it."""
    viz.save_png(figure, os.path.join(folder, name))
    width, height = viz.pixels(figure)
    return f'<img src="{html.escape(name)}" alt="{html.escape(alt)}" width="{width}" height="{height}">'


def _braces(group: Sequence[str]) -> str:
    return format_groups([group])


def featured_grouping(groupings: Sequence[Grouping], metrics: dict) -> Grouping:
    """TAG's grouping best by the run's headline measure in metrics.json (`grouped.headline`: the
    lowest total test error, or with dense tasks the highest ΔMTL); the first one if none is
    measured."""
    measure = grouped.headline(metrics)
    sign = -1.0 if measure == "delta_mtl" else 1.0
    values = {row["name"]: sign * row[measure] for row in metrics["groupings"]}
    measured = [g for g in groupings if RunDir.model_name(g.budget) in values]
    return min(measured, key=lambda g: values[RunDir.model_name(g.budget)]) if measured else groupings[0]


def _config_section(config: dict) -> str:
    """The settings of config.json (a section per concern), one row each: "train.epochs" | 5."""
    rows = [[f"{section}.{name}", ", ".join(map(str, value)) if isinstance(value, list) else value]
            for section, values in config.items() for name, value in values.items()]
    return "<h2>Settings</h2>\n" + html_table(["setting", "value"], rows)


def _affinity_section(folder: str, affinity: TaskAffinity, featured: Grouping) -> str:
    tasks = list(affinity.tasks)
    parts = [
        "<h2>Task affinity</h2>",
        f"<p>A[source, target]: how much one step on the source task lowers the loss of the target task, "
        f"averaged over {affinity.steps} affinity steps ({affinity.skipped} samples skipped){_precision(affinity)}. "
        f"Selection reads the affinity <em>onto</em> a task: a column. Outlined: the groups of TAG's "
        f"k={featured.budget:g} grouping.</p>",
        _figure(folder, "affinity_heatmap.png", viz.affinity_heatmap(tasks, affinity.matrix, featured.groups),
                "affinity heatmap"),
    ]
    if affinity.epochs:
        serving = {t: featured.served_by(t) for t in tasks}
        parts += ["<h3>Affinity over training</h3>",
                  _figure(folder, "affinity_trajectories.png", viz.affinity_trajectories(tasks, affinity.epochs, serving),
                          "affinity over training")]
    return "\n".join(parts)


def _precision(affinity: TaskAffinity) -> str:
    """", median standard error of a pair 0.03 (spread of the pairs 0.41)", or nothing without stderr."""
    off = ~np.eye(len(affinity.tasks), dtype=bool)
    if affinity.stderr is None or not np.isfinite(affinity.stderr[off]).any():
        return ""
    return (f", median standard error of a pair {np.nanmedian(affinity.stderr[off]):.3g} (spread of the pairs' "
            f"means {np.nanstd(affinity.matrix[off]):.3g})")


def _selection_section(folder: str, tasks: list[str], groupings: Sequence[Grouping], metrics: dict) -> str:
    measure = grouped.headline(metrics)
    measured = {row["name"]: row for row in metrics["groupings"]}
    results = [grouped.headline_text(measured.get(RunDir.model_name(g.budget)), measure) for g in groupings]
    rows = []
    for g, result in zip(groupings, results):
        networks = "; ".join(
            f"network {i + 1} trains {_braces(group)}, serves {_braces([t for t in tasks if g.assignment[t] == i])}"
            for i, group in enumerate(g.groups))
        rows.append([f"{g.budget:g}", networks, f"{g.score:.4g}", f"{g.upper_bound:.4g}", "yes" if g.optimal else "no",
                     g.method, f"{g.seconds:.2f}", stability_text(g), result])
    chart = viz.grouping_chart(tasks, groupings, results)
    return "\n".join([
        "<h2>Selection</h2>",
        "<p>Stability: the share of bootstrap resamples of the affinity run's samples (blocks of consecutive "
        f"affinity steps) that select the same grouping; below {STABLE:g} the measurement does not settle it.</p>",
        html_table(["k", "networks", "score", "upper bound", "optimal", "solver", "seconds", "stability",
                    "test result"], rows),
        _figure(folder, "grouping.png", chart, "grouping chart"),
    ])


def _metrics_section(metrics: dict) -> str:
    tasks = metrics["tasks"]
    summary = []
    for row in grouped.summarize(metrics["groupings"]):
        text = grouped.format_row(row)
        summary.append([row["name"], row["networks"], text["total_error"], text["delta_mtl"],
                        row.get("parameters", "-"), row.get("inference_flops", "-"), text["time_to_choose"]])
    named = [row for row in metrics["groupings"] if "_seed" not in row["name"]]
    errors = np.array([[grouped.task_error(row["per_task"][t]) for t in tasks] for row in named])
    best = errors == errors.min(axis=0, keepdims=True)
    per_task = [[row["name"], *(grouped.format_task_error(row, t) for t in tasks)] for row in named]
    classes = [["", *("best" if b else "" for b in line)] for line in best]
    seeds = metrics.get("eval_seeds", 1)
    spread = (f"mean ± standard deviation over {seeds} seeds (networks trained with seeds seed, seed + 1, ...)"
              if seeds > 1 else "each network trained once (one seed: no spread; run with --eval_seeds=N for error bars)")
    parts = [
        "<h2>Metrics against the baselines</h2>",
        "<p>Total test error: the sum over tasks of each task's error (100·(1 − accuracy), or the MAE; dense "
        "tasks: 100·(1 − mIoU), RMSE, angle error in degrees, 100·(1 − ODS F)), each task "
        f"counted from the network serving it; {html.escape(spread)}. Random groupings: over every partition and "
        "seed. ΔMTL: mean relative change of each task's main metric (accuracy, MAE, mIoU, RMSE, angle error, "
        "ODS F) against single-task networks, signed by its direction (positive is better).</p>",
        *(['<p><strong>Dense tasks: ΔMTL is the headline.</strong> Their errors are in different units, so the '
           "total error is dominated by the largest; the featured grouping is the one with the highest ΔMTL.</p>"]
          if grouped.headline(metrics) == "delta_mtl" else []),
        html_table(["grouping", "networks", "total test error (%)", "ΔMTL", "parameters", "inference FLOPs",
                    "time to choose (s)"], summary),
        "<h3>Test error per task</h3><p class=\"note\">Best mean per task in bold; random groupings left out.</p>",
        html_table(["grouping", *tasks], per_task, classes),
    ]
    header, dense = grouped.dense_metric_table(metrics)
    if dense:
        parts += ["<h3>Dense metrics per task</h3><p class=\"note\">Test set, mean over seeds; lower is better "
                  "for RMSE, abs rel and angle error (degrees), higher for mIoU and ODS F.</p>",
                  html_table(header, dense)]
    speed = grouped.time_to_choose(metrics["groupings"])
    if speed:
        parts.append("<p>Time to choose, this run (TAG: its affinity run and the solver; HOA: its single and pair "
                     "networks and the solver): " + html.escape("; ".join(speed)) + ".</p>")
    comparisons = grouped.format_comparisons(metrics.get("comparisons", []))
    if comparisons:
        parts += ["<h3>TAG against each baseline, seed by seed</h3>",
                  f"<p>{html.escape(grouped.comparison_caption(grouped.headline(metrics)).capitalize())}, "
                  "networks trained with the same seeds: mean difference and its 95% t interval. Beyond noise: the "
                  "interval excludes 0.</p>",
                  html_table(["TAG", "baseline", "TAG − baseline [95% interval]", "verdict"], comparisons)]
    return "\n".join(parts)


def _test_images(test_split: tf.data.Dataset | None, num_images: int):
    """(images [N, H, W, C], {task: labels}) of the first test examples; None when the input is not
    one image."""
    spec = None if test_split is None else test_split.element_spec[0]
    if not isinstance(spec, tf.TensorSpec) or spec.shape.rank != 3:
        return None
    images, labels = next(iter(test_split.take(num_images).batch(num_images)))
    return images.numpy(), {name: value.numpy() for name, value in labels.items()}


def _serving_networks(run: RunDir, featured: Grouping) -> dict[int, keras.Model]:
    """{index: network} of the featured grouping's networks that serve a task."""
    paths = run.trained_networks()
    return {index: keras.saving.load_model(paths[tuple(group)], compile=False)
            for index, group in enumerate(featured.groups) if index in featured.assignment.values()}


def _dense_section(folder: str, tasks: Sequence[Task], featured: Grouping, test, networks) -> str:
    """Input, ground truth and prediction of every dense task on the test images (`dense_viz`)."""
    dense = [t for t in tasks if t.is_dense]
    if not dense or test is None:
        return ""
    images, labels = test
    parts = ["<h2>Dense predictions</h2>",
             f"<p>The first {len(images)} test images; each dense task predicted by the network serving it in "
             f"TAG's k={featured.budget:g} grouping. Segmentation: a colour per class (black: ignored); depth: "
             "viridis, near dark to far yellow, one scale for truth and prediction; normals: (n + 1) / 2 as RGB; "
             "edges: grey, white an edge (black: no label).</p>"]
    for task in dense:
        outputs = networks[featured.assignment[task.name]].predict(images, verbose=0)[task.name]
        figure = dense_viz.prediction_grid(task, images, labels[task.name], outputs)
        parts.append(_figure(folder, f"dense_{task.name}.png", figure, f"{task.name}: input, truth, prediction"))
    return "\n".join(parts)


def _saliency_section(folder: str, tasks: Sequence[Task], featured: Grouping, test, networks) -> str:
    heading = "<h2>Where each head looks</h2>"
    if test is None:
        return heading + '\n<p class="note">The input is not one image: no saliency maps.</p>'
    skipped = [t.name for t in tasks if t.is_dense]
    tasks = [t for t in tasks if not t.is_dense]
    if not tasks:
        return heading + ('\n<p class="note">Every task is dense: saliency explains one prediction per image, so '
                          "there are no saliency maps; see the dense predictions.</p>")
    images, labels = test
    networks = {i: n for i, n in networks.items() if any(featured.assignment[t.name] == i for t in tasks)}
    served_by = {i: [t.name for t in tasks if featured.assignment[t.name] == i] for i in networks}
    methods = [m for m in viz.SALIENCY_METHODS if all(viz.supports(m, n, served_by[i]) for i, n in networks.items())]
    maps = {method: np.zeros((len(tasks), *images.shape[:3]), np.float32) for method in methods}
    titles = [None] * len(tasks)
    for index, model in networks.items():
        rows = [r for r, t in enumerate(tasks) if featured.assignment[t.name] == index]
        served = [tasks[r] for r in rows]
        outputs = model.predict(images, verbose=0)
        for method in methods:
            maps[method][rows] = viz.saliency_maps(model, served, images, method)
        for r, task in zip(rows, served):
            titles[r] = viz.prediction_titles(task, outputs[task.name], labels[task.name])
    names = [t.name for t in tasks]
    parts = [heading, f"<p>The first {len(images)} test images; each row is a task, explained by the network "
                      f"serving it in TAG's k={featured.budget:g} grouping (its prediction: the predicted class, "
                      f"or the value). Saliency: |d prediction / d pixel|; GradCAM++: the last convolution's "
                      f"class activation map.</p>"]
    if skipped:
        parts.append(f'<p class="note">Dense tasks ({html.escape(", ".join(skipped))}) left out: saliency explains '
                     "one prediction per image; see the dense predictions.</p>")
    if len(methods) < len(viz.SALIENCY_METHODS):
        parts.append('<p class="note">GradCAM++ needs a convolution among the top-level layers of the serving '
                     "networks; these keep theirs inside a nested model.</p>")
    for method in methods:
        figure = viz.saliency_grid(images, maps[method], names, titles, method)
        parts.append(_figure(folder, f"saliency_{method.replace('+', 'p')}.png", figure, f"{method} maps"))
    return "\n".join(parts)


def exported_models(run: RunDir) -> list[dict]:
    """Every SavedModel under <run_dir>/export/<name>/<version>/, newest version last, with its
    assets/tasks.json (None when absent)."""
    base = run.export_dir
    found = []
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        model_dir = os.path.join(base, name)
        for version in existing_versions(model_dir):
            path = os.path.join(model_dir, str(version))
            if os.path.exists(os.path.join(path, "saved_model.pb")):
                spec = os.path.join(path, "assets", "tasks.json")
                found.append({"name": name, "version": version, "path": os.path.abspath(path),
                              "tasks": read_json(spec) if os.path.exists(spec) else None})
    return found


def _serving_section(run: RunDir) -> str:
    heading = "<h2>Serving</h2>"
    models = exported_models(run)
    if not models:
        return heading + ('\n<p class="note">This run has no exported SavedModel (no export/ folder): the export '
                          "stage writes export/&lt;model&gt;/&lt;version&gt;/ and export/models.config.</p>")
    rows, parts = [], [heading]
    for m in models:
        spec = m["tasks"] or {}
        outputs = ", ".join(f"{t['name']}: {t['output']}" for t in spec.get("tasks", []))
        rows.append([m["name"], m["version"], m["path"], ", ".join(spec.get("signatures", [])), outputs])
    parts.append(html_table(["model", "version", "SavedModel", "signatures", "outputs (task: answer)"], rows))
    latest = models[-1]
    if latest["tasks"] is None:  # no description beside the SavedModel: its signatures tell
        parts.append(f"<pre>saved_model_cli show --all --dir {html.escape(latest['path'])}</pre>")
        return "\n".join(parts)
    inputs = latest["tasks"]["inputs"]
    batch = {i["name"]: [1 if d is None else d for d in i["shape"]] for i in inputs}
    arrays = ", ".join(f"{n!r}: np.zeros({shape}, np.{i['dtype']})" for (n, shape), i in zip(batch.items(), inputs))
    instance = ", ".join(f"{n!r}: np.zeros({shape[1:]}).tolist()" for n, shape in batch.items())
    models_config = os.path.abspath(run.models_config)
    name = latest["name"]
    query = (f"# start a TF-Serving-compatible server on the exported models (or TF Serving itself: serving/README.md)\n"
             f"python -m serving.dev_server --model_config_file={models_config} --port=8500 --rest_api_port=8501\n\n"
             f"# ask it, with the bundled client (REST; protocol=\"grpc\" for gRPC)\n"
             f"python - <<'EOF'\nimport numpy as np\nfrom serving.client import TFServingClient\n"
             f"x = {{{arrays}}}  # a batch of inputs, by name\n"
             f"print(TFServingClient('localhost', rest_port=8501).predict({name!r}, x))\nEOF\n\n"
             f"# or with curl, TF Serving's REST API (row format: one object of named inputs per instance)\n"
             f"python -c \"import json, numpy as np; print(json.dumps({{'instances': [{{{instance}}}]}}))\""
             f" > request.json\n"
             f"curl -d @request.json http://localhost:8501/v1/models/{name}:predict")
    parts += [f"<p>Server configuration: <code>{html.escape(models_config)}</code>"
              + ("" if os.path.exists(models_config) else " (not written)") + "</p>",
              f"<pre>{html.escape(query)}</pre>"]
    return "\n".join(parts)


def _tensorboard_section(run: RunDir) -> str:
    log_dir = os.path.abspath(run.tensorboard)
    return ("<h2>TensorBoard</h2>\n<p>Per epoch, every pair's affinity (scalars) and the matrix as an image; the "
            f"selection for every k as text.</p>\n<pre>tensorboard --logdir {html.escape(log_dir)}</pre>")


def write_report(run_dir: str, tasks: Sequence[Task], test_split: tf.data.Dataset | None,
                 num_images: int = REPORT_IMAGES) -> str:
    """Write <run_dir>/report/ (index.html and its PNGs) atomically; returns the path of index.html.

    Args:
      run_dir: a run directory whose affinity, select, train and evaluate stages are done.
      tasks: the run's tasks, in the user's order.
      test_split: the unbatched test split (x, {task: label}); saliency maps are drawn for its first
        `num_images` examples when x is an image [H, W, C]. None leaves saliency out.
    """
    if not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"num_images must be a positive integer, got {num_images!r}.")
    run = RunDir(run_dir)
    config = read_json(run.config)
    affinity = TaskAffinity.from_json(run.affinity)
    names, groupings = load_selection(run.selection)
    metrics = read_json(run.metrics)
    featured = featured_grouping(groupings, metrics)
    test = _test_images(test_split, num_images)
    networks = _serving_networks(run, featured) if test is not None else {}
    with atomic_directory(run.report_dir) as folder:
        sections = [
            _config_section(config),
            _affinity_section(folder, affinity, featured),
            _selection_section(folder, names, groupings, metrics),
            _metrics_section(metrics),
            _dense_section(folder, tasks, featured, test, networks),
            _saliency_section(folder, tasks, featured, test, networks),
            _serving_section(run),
            _tensorboard_section(run),
        ]
        title = f"TAG run {os.path.basename(os.path.abspath(run_dir))}"
        page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
                f"<style>{_STYLE}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
                f"<p class=\"note\">{html.escape(os.path.abspath(run_dir))}, reported "
                f"{datetime.datetime.now().isoformat(timespec='seconds')}. Tasks: {html.escape(', '.join(names))}.</p>\n"
                + "\n".join(sections) + "\n</body>\n</html>\n")
        with open(os.path.join(folder, "index.html"), "w", encoding="utf-8") as f:
            f.write(page)
    return run.report_index


def selection_markdown(tasks: Sequence[str], grouping: Grouping) -> str:
    """One grouping as a Markdown table (TensorBoard's text dashboard renders Markdown).

    >>> g = Grouping(groups=(("a", "b"), ("c",)), assignment={"a": 0, "b": 0, "c": 1}, score=1.5,
    ...              optimal=True, upper_bound=1.5, method="dp", seconds=0.0, budget=2)
    >>> print(selection_markdown(["a", "b", "c"], g))
    k = 2: score 1.5 (optimal, dp)
    <BLANKLINE>
    | network | trains | serves |
    |---|---|---|
    | 1 | a, b | a, b |
    | 2 | c | c |
    """
    lines = [f"k = {grouping.budget:g}: score {grouping.score:.4g} ({'optimal' if grouping.optimal else 'not proven optimal'}, "
             f"{grouping.method})", "", "| network | trains | serves |", "|---|---|---|"]
    for i, group in enumerate(grouping.groups):
        served = [t for t in tasks if grouping.assignment[t] == i]
        lines.append(f"| {i + 1} | {', '.join(group)} | {', '.join(served)} |")
    return "\n".join(lines)


def log_selection(log_dir: str, tasks: Sequence[str], groupings: Sequence[Grouping]) -> None:
    """Write every grouping to TensorBoard as text, tag `selection/k<k>` (step 0)."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default(step=0):
        for grouping in groupings:
            tf.summary.text(f"selection/k{grouping.budget:g}", selection_markdown(tasks, grouping))
    writer.close()
