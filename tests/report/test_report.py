"""The report stage on a real (tiny) run: the HTML, its pictures, TensorBoard, and a real browser."""

import glob
import html.parser
import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tag_tf.run as tag_run
from tag_tf.report import html as report
from tag_tf.utils.io import read_json
from tag_tf.selection import load_selection, stability_text

TINY = tag_run.PRESETS["demo"].replace(num_examples=600, epochs=2, trunk_filters=4, planted_groups=2,
                           tasks_per_group=2, num_groups=(2,), baselines=("all_in_one",), eval_seeds=2,
                           balancer="equal", learning_rate=0.05)
TASKS = ["g0_t0", "g0_t1", "g1_t0", "g1_t1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("run"))
    assert tag_run.run(TINY, path).ran[-1] == "report"
    return path


class Page(html.parser.HTMLParser):
    """The <img> sources and the visible text of a page."""

    def __init__(self, text):
        super().__init__()
        self.images, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


def read_page(run_dir):
    return Page(open(os.path.join(run_dir, "report", "index.html"), encoding="utf-8").read())


def test_html_names_every_task_and_every_image_it_shows_exists(run_dir):
    page = read_page(run_dir)
    text = " ".join(page.text)
    for task in TASKS:
        assert task in text
    for heading in ("Settings", "Task affinity", "Selection", "Metrics against the baselines", "Where each head looks",
                    "Serving", "TensorBoard"):
        assert heading in text
    assert page.images == ["affinity_heatmap.png", "affinity_trajectories.png", "grouping.png",
                           "saliency_saliency.png", "saliency_gradcampp.png"]
    for source in page.images:
        pixels = np.asarray(Image.open(os.path.join(run_dir, "report", source)).convert("L"), float)
        assert pixels.std() > 20  # a real picture, not a blank one
    assert sorted(os.listdir(os.path.join(run_dir, "report"))) == sorted(page.images + ["index.html"])
    # no reference leaves the folder or the machine: it opens offline, from the file system
    source = open(os.path.join(run_dir, "report", "index.html")).read()
    assert "http" not in source.replace("http://localhost", "")
    assert "<script" not in source


def test_html_holds_the_runs_numbers_and_where_the_model_is(run_dir):
    text = " ".join(read_page(run_dir).text)
    metrics = read_json(os.path.join(run_dir, "metrics.json"))
    for row in metrics["groupings"]:  # two seeds: mean ± std, every task's too
        assert f"{row['total_error']:.2f} ± {row['total_error_std']:.2f} (2 seeds)" in text
        for task in TASKS:
            assert f"{100 * (1 - row['per_task'][task]['accuracy']):.2f} ± {row['per_task_error_std'][task]:.2f}" in text
    [comparison] = metrics["comparisons"]  # tag_k2 vs all_in_one, seed by seed
    low, high = comparison["interval"]
    assert "TAG against each baseline, seed by seed" in text
    assert f"{comparison['mean']:+.2f} [{low:+.2f}, {high:+.2f}]" in text
    _, groupings = load_selection(os.path.join(run_dir, "selection.json"))
    assert f"{groupings[0].score:.4g}" in text
    assert "network 1 trains {" in text
    assert groupings[0].stability is not None and stability_text(groupings[0]) in text  # the bootstrap's share
    assert "median standard error of a pair" in text
    saved_model = os.path.join(os.path.abspath(run_dir), "export", "tag_k2", "1")
    assert os.path.exists(os.path.join(saved_model, "saved_model.pb"))
    assert saved_model in text and "serving.dev_server --model_config_file=" in text
    assert "http://localhost:8501/v1/models/tag_k2:predict" in text


def test_report_without_export_or_images_says_so(run_dir, tmp_path):
    copy = str(tmp_path / "run")
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("export", "report"))
    path = report.write_report(copy, tag_run.load_data(TINY).tasks, None)
    page = Page(open(path).read())
    text = " ".join(page.text)
    assert "no exported SavedModel" in text and "The input is not one image" in text
    assert all(os.path.exists(os.path.join(copy, "report", s)) for s in page.images)
    with pytest.raises(ValueError, match="num_images must be a positive integer, got 0"):
        report.write_report(copy, tag_run.load_data(TINY).tasks, None, num_images=0)


def tensorboard_values(log_dir):
    """{tag: [(step, value)]} of every summary under log_dir."""
    values = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                values.setdefault(value.tag, []).append((event.step, tf.make_ndarray(value.tensor)))
    return values


def test_tensorboard_has_the_matrix_per_epoch_and_the_selection_as_text(run_dir):
    values = tensorboard_values(os.path.join(run_dir, "tensorboard"))
    assert [step for step, _ in values["affinity/matrix"]] == list(range(TINY.train.epochs))
    width, height, png = values["affinity/matrix"][0][1]  # the image summary: width, height, PNG bytes
    assert (int(width), int(height)) == (16 * len(TASKS), 16 * len(TASKS)) and png.startswith(b"\x89PNG")
    (step, text), = values["selection/k2"]
    text = text.item().decode()
    assert step == 0 and text.startswith("k = 2: score")
    _, groupings = load_selection(os.path.join(run_dir, "selection.json"))
    for group in groupings[0].groups:
        assert f"| {', '.join(group)} |" in text


@pytest.mark.slow
def test_every_image_loads_in_headless_chromium(run_dir, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium not installed (Debian package 'chromium')")
    folder = os.path.join(run_dir, "report")
    probe = os.path.join(folder, "probe.html")  # beside index.html, so that relative sources resolve alike
    script = ("<script>window.addEventListener('load', () => {const images = [...document.images];"
              "document.body.dataset.loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;"
              "document.body.dataset.total = images.length;});</script>")
    page = open(os.path.join(folder, "index.html")).read()
    open(probe, "w").write(page.replace("</body>", script + "</body>"))
    try:
        result = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", "--dump-dom",
             "file://" + probe], capture_output=True, text=True, timeout=120)
    finally:
        os.remove(probe)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'data-loaded="5" data-total="5"' in result.stdout
