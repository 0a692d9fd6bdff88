import numpy as np
import pytest
from PIL import Image

from tag_tf.report import pictures as viz
from tag_tf.models import build_multitask_model, celeba_resnet_trunk
from tag_tf.selection import Grouping, select_groups
from tag_tf.tasks import Task

TASKS = ["a", "b", "c"]
MATRIX = np.array([[0.5, 2.0, -0.3], [1.0, 0.4, -3.0], [0.2, np.nan, 0.6]])


def saved(figure, tmp_path, name="plot.png"):
    path = str(tmp_path / name)
    viz.save_png(figure, path)
    return np.asarray(Image.open(path).convert("RGB")).astype(float)


def assert_not_blank(pixels):
    assert pixels.mean(axis=-1).std() > 20  # a white or flat picture has (almost) none


def fixed_grouping(groups, tasks, budget, score=1.0):
    assignment = {t: next(i for i, g in enumerate(groups) if t in g) for t in tasks}
    return Grouping(groups=tuple(map(tuple, groups)), assignment=assignment, score=score, optimal=True,
                    upper_bound=score, method="dp", seconds=0.0, budget=budget)


def test_heatmap_size_cells_and_colours(tmp_path):
    figure = viz.affinity_heatmap(TASKS, MATRIX, groups=[("a", "b"), ("c",)])
    pixels = saved(figure, tmp_path)
    assert pixels.shape == (400, 450, 3)  # (2.5 + 3/2) x (3 + 3/2) inches at 100 dpi
    assert_not_blank(pixels)
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == TASKS
    assert [t.get_text() for t in axes.get_yticklabels()] == TASKS
    assert "source" in axes.get_ylabel() and "target" in axes.get_xlabel()
    assert {t.get_text() for t in axes.texts} >= {"2", "-3", "n/a", "0.6"}

    def colour(source, target):  # just above the value written in the cell
        x, y = axes.transData.transform((target, source - 0.3))
        return pixels[round(pixels.shape[0] - y), round(x)]

    largest, smallest, zero_ish = colour(0, 1), colour(1, 2), colour(2, 0)
    assert largest[0] > largest[2] + 50  # red: the source helps
    assert smallest[2] > smallest[0] + 50  # blue: the source hurts
    assert np.abs(largest - smallest).sum() > 150
    assert zero_ish.min() > 200  # near 0: near white


def test_heatmap_scale_ignores_the_diagonal_which_is_grey_with_its_values(tmp_path):
    """Self-affinity ten times the rest would wash the colours out: the scale is the largest
    off-diagonal |entry| (here 1.0, full red), and the diagonal is grey with its values written."""
    matrix = np.array([[10.0, 1.0, -0.5], [0.2, 12.0, -1.0], [0.0, 0.5, 9.0]])
    figure = viz.affinity_heatmap(TASKS, matrix)
    pixels = saved(figure, tmp_path)
    axes = figure.axes[0]
    assert figure.axes[1].get_ylim() == (-1.0, 1.0)  # the colour bar spans the off-diagonal entries only
    assert {"10", "12", "9"} <= {t.get_text() for t in axes.texts}

    def colour(source, target):
        x, y = axes.transData.transform((target, source - 0.3))
        return pixels[round(pixels.shape[0] - y), round(x)]

    for i in range(3):
        np.testing.assert_allclose(colour(i, i), [153, 153, 153], atol=2)  # grey (0.6)
    red, blue = colour(0, 1), colour(1, 2)
    # 1.0 and -1.0 are the ends of the scale: the darkest red and blue (RdBu), not washed out by 10
    np.testing.assert_allclose(red, [103, 0, 31], atol=3)
    np.testing.assert_allclose(blue, [5, 48, 97], atol=3)


def test_heatmap_rejects_bad_input():
    with pytest.raises(ValueError, match=r"square \[source, target\]"):
        viz.affinity_heatmap(TASKS, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"3 tasks but 2 task names"):
        viz.affinity_heatmap(["a", "b"], MATRIX)
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['z'\]; the tasks are \['a', 'b', 'c'\]"):
        viz.affinity_heatmap(TASKS, MATRIX, groups=[("a", "z")])


def test_trajectories_highlight_the_serving_group(tmp_path):
    epochs = [MATRIX * s for s in (0.5, 1.0, 1.5, 1.2)]
    figure = viz.affinity_trajectories(TASKS, epochs, {"a": ("a", "b"), "b": ("a", "b"), "c": ("c",)})
    pixels = saved(figure, tmp_path)
    assert pixels.shape == (300, 1050, 3)  # 3 panels of 3.5 x 2.5 inches, plus 0.5 inch
    assert_not_blank(pixels)
    panels = figure.axes
    assert [p.get_title() for p in panels] == ["onto a", "onto b", "onto c"]
    assert [t.get_text() for t in panels[0].get_legend().get_texts()] == ["b"]  # the serving group's other source
    assert panels[2].get_legend() is None  # alone: nothing highlighted
    lines = [line for line in panels[0].get_lines() if len(line.get_xdata()) == 4]
    assert len(lines) == 2 and sorted(line.get_linewidth() for line in lines) == [0.8, 2]
    np.testing.assert_allclose(lines[0].get_ydata(), [e[1, 0] for e in epochs])  # source b onto a
    with pytest.raises(ValueError, match="at least one epoch"):
        viz.affinity_trajectories(TASKS, [])
    with pytest.raises(ValueError, match=r"serving names unknown task\(s\) \['z'\]"):
        viz.affinity_trajectories(TASKS, epochs, {"z": ("a",)})


def test_grouping_chart_shows_trained_and_served_tasks(tmp_path):
    tasks = ["a", "b", "c", "d"]
    k2 = select_groups(np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], float), 2, tasks=tasks)
    k3 = Grouping(groups=(("a", "b", "c"), ("c", "d"), ("d",)), assignment={"a": 0, "b": 0, "c": 1, "d": 2},
                  score=0.5, optimal=False, upper_bound=0.7, method="heuristic", seconds=0.0, budget=3)
    figure = viz.grouping_chart(tasks, [k2, k3], ["total error 12.50", "ΔMTL n/a"])
    pixels = saved(figure, tmp_path)
    assert pixels.shape == (450, 450, 3)  # 2.5 + 4/2 wide; (1 + 0.4·2) + (1 + 0.4·3) + 0.5 high
    assert_not_blank(pixels)
    assert [a.get_title() for a in figure.axes] == ["k = 2: score 4, total error 12.50",
                                                   "k = 3: score 0.5, ΔMTL n/a"]
    cells = figure.axes[1].get_images()[0].get_array()
    np.testing.assert_array_equal(cells, [[2, 2, 1, 0], [0, 0, 2, 1], [0, 0, 0, 2]])  # 2 serves, 1 trains only
    with pytest.raises(ValueError, match="one result per grouping: 1 groupings, 0 results"):
        viz.grouping_chart(tasks, [k2], [])


@pytest.fixture(scope="module")
def network():
    tasks = [Task("a"), Task("b"), Task("c", "multiclass", num_classes=3), Task("d", "regression")]
    return build_multitask_model(celeba_resnet_trunk(16, filters=8), tasks)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((3, 16, 16, 3)).astype("float32")


def test_heads_model_is_a_flat_list_output_model_with_the_same_answers(network, images):
    wrapped = viz.heads_model(network, ["c", "a"])
    answers = network(images)
    outputs = wrapped([images])
    assert isinstance(outputs, list) and len(outputs) == 2
    np.testing.assert_allclose(outputs[0], answers["c"], rtol=1e-5)
    np.testing.assert_allclose(outputs[1], answers["a"], rtol=1e-5)
    assert "conv2_2" in [layer.name for layer in wrapped.layers]  # the trunk is opened up for GradCAM++
    with pytest.raises(ValueError, match=r"Unknown task\(s\) \['z'\]; the model's heads are \['a', 'b', 'c', 'd'\]"):
        viz.heads_model(network, ["a", "z"])


@pytest.mark.parametrize("method", viz.SALIENCY_METHODS)
def test_saliency_maps_are_finite_per_task_and_differ_between_heads(network, images, method):
    maps = viz.saliency_maps(network, network.tasks, images, method)
    assert maps.shape == (4, 3, 16, 16) and maps.dtype == np.float32
    assert np.all(np.isfinite(maps)) and maps.min() >= 0 and maps.max() <= 1 + 1e-6
    for t in range(4):
        assert maps[t].std() > 0  # not flat
    assert np.abs(maps[0] - maps[1]).max() > 0.05  # two binary heads look at different pixels


def test_saliency_of_one_head_matches_the_same_head_among_others(network, images):
    """A network serving one task (a single-task group) gives a one-output model: same map."""
    one = viz.saliency_maps(network, network.tasks[:1], images)
    assert one.shape == (1, 3, 16, 16)
    np.testing.assert_allclose(one[0], viz.saliency_maps(network, network.tasks, images)[0], atol=1e-5)


def test_saliency_rejects_bad_input(network, images):
    with pytest.raises(ValueError, match=r"Unknown saliency method 'cam'; valid choices: \('saliency', 'gradcam\+\+'\)"):
        viz.saliency_maps(network, network.tasks, images, "cam")
    with pytest.raises(ValueError, match=r"images \[N, H, W, C\]"):
        viz.saliency_maps(network, network.tasks, images[0], "saliency")


def test_saliency_grid_and_titles(network, images, tmp_path):
    tasks = network.tasks[:2]
    maps = viz.saliency_maps(network, tasks, images)
    answers = network(images)
    titles = [viz.prediction_titles(t, np.asarray(answers[t.name]), np.array([1, 0, -1])) for t in tasks]
    figure = viz.saliency_grid(images, maps, ["a", "b"], titles, "saliency")
    pixels = saved(figure, tmp_path)
    assert pixels.shape == (400, 575, 3)  # (0.5 + 1.75 per task) x (0.5 + 1.75 per image)
    assert_not_blank(pixels)
    assert [a.get_title() for a in figure.axes[:3]] == titles[0]
    assert figure.axes[0].get_ylabel() == "a" and figure.axes[3].get_ylabel() == "b"
    with pytest.raises(ValueError, match="maps must be"):
        viz.saliency_grid(images, maps[:1], ["a", "b"], titles, "saliency")


def test_prediction_titles_for_every_kind():
    multiclass = Task("hair", "multiclass", num_classes=3)
    assert viz.prediction_titles(multiclass, np.array([[0.0, 2.0, 0.0]]), np.array([2])) == \
        ["pred 1 (p 0.79), label 2"]
    assert viz.prediction_titles(Task("age", "regression"), np.array([[31.46], [5.0]]), np.array([30.0, np.nan])) == \
        ["pred 31.5, label 30", "pred 5, label -"]
