"""The shared layers nearest the outputs (GradNorm's default W) on every architecture, a residual
trunk and a subclassed model; GradNorm balances exactly their variables."""

import keras
import pytest

from tag_tf.models.architectures import cross_stitch, hard_sharing, mmoe, padnet, with_initial_tasks
from tag_tf.balancing import GradNorm
from tag_tf.balancing.layer_graph import flatten_layers, nearest_shared_layers, shared_layers
from tag_tf.models import celeba_resnet_trunk, mlp_trunk, wrap
from tag_tf.tasks import Task

DENSE = [Task("seg", "segmentation", num_classes=3), Task("depth", "depth"), Task("normals", "normals")]


def nearest(network, tasks):
    model = wrap(network, tasks)
    return [layer.name for layer in nearest_shared_layers(model, model.shared_variables)]


def test_hard_sharing_on_a_residual_trunk_gives_the_trunk_s_last_convolution_only():
    # the trunk's second block adds its input (conv1_1's block output) to conv2_2's: the skip path
    # reaches conv1_1 first, but conv1_1 is upstream of conv2_2
    network = hard_sharing(celeba_resnet_trunk(16, filters=4), ["a", "b"], head_units=2)
    assert nearest(network, ["a", "b"]) == ["conv2_2"]


def test_soft_sharing_gives_every_column_s_or_expert_s_last_layer():
    # the last cross-stitch unit (no kernel) is walked through to both columns' last dense layers
    network = cross_stitch(mlp_trunk(3, hidden=(4, 4)), ["a", "b"], stages=("dense_0",), head_units=2)
    assert nearest(network, ["a", "b"]) == ["a_dense_1", "b_dense_1"]
    assert nearest(mmoe(mlp_trunk(3, hidden=(4,)), ["a", "b", "c"], num_experts=3), ["a", "b", "c"]) == [
        "expert_0", "expert_1", "expert_2"]


def test_padnet_gives_the_initial_predictions_features_that_every_task_distils_from():
    network = padnet(celeba_resnet_trunk(16, filters=4, feature_map=True), DENSE, channels=4)
    names = nearest(network, with_initial_tasks(DENSE))
    assert sorted(names) == ["depth_refine", "normals_refine", "seg_refine"]


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.first = keras.layers.Dense(4, name="first")
        self.second = keras.layers.Dense(4, name="second")
        self.heads = {t: keras.layers.Dense(1, name=f"{t}_out") for t in "ab"}

    def call(self, x):
        h = self.second(self.first(x))
        return {t: head(h) for t, head in self.heads.items()}


def test_a_subclassed_model_falls_back_to_its_last_shared_layer_with_a_kernel():
    network = Subclassed()
    network(keras.ops.zeros((1, 3)))
    model = wrap(network, ["a", "b"])
    assert [layer.name for layer in shared_layers(model, model.shared_variables)] == ["first", "second"]
    assert [layer.name for layer in nearest_shared_layers(model, model.shared_variables)] == ["second"]


def test_gradnorm_balances_the_variables_of_those_layers_by_default_and_a_named_one_on_request():
    network = cross_stitch(mlp_trunk(3, hidden=(4, 4)), ["a", "b"], stages=("dense_0",), head_units=2)
    model = wrap(network, ["a", "b"], balancer=GradNorm())
    assert [v.path for v in model.balancer.balanced_variables(model)] == [
        "a_dense_1/kernel", "a_dense_1/bias", "b_dense_1/kernel", "b_dense_1/bias"]
    named = wrap(cross_stitch(mlp_trunk(3, hidden=(4, 4)), ["a", "b"], stages=("dense_0",), head_units=2), ["a", "b"],
                 balancer=GradNorm(layer="cross_stitch_1"))
    assert [v.path for v in named.balancer.balanced_variables(named)] == ["cross_stitch_1/alpha"]
    with pytest.raises(ValueError, match=r"GradNorm layer 'a_out' is not a shared layer with weights; valid "
                                         r"choices: \['a_dense_0', 'b_dense_0', 'cross_stitch_0'"):
        wrap(cross_stitch(mlp_trunk(3, hidden=(4, 4)), ["a", "b"], stages=("dense_0",), head_units=2), ["a", "b"],
             balancer=GradNorm(layer="a_out"))


def test_flatten_layers_lists_a_nested_model_before_its_layers():
    trunk = mlp_trunk(3, hidden=(4,))
    assert [layer.name for layer in flatten_layers(trunk)][:1] == [trunk.name]
    assert "dense_0" in [layer.name for layer in flatten_layers(trunk)]
