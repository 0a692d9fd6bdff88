import keras
import numpy as np
import pytest

from tag_tf.models import build_multitask_model, celeba_resnet_trunk, inference_flops, mlp_trunk
from tag_tf.tasks import Task


def test_celeba_trunk_matches_the_official_architecture():
    trunk = celeba_resnet_trunk(64)
    assert trunk.input.name == "image" and trunk.input_shape == (None, 64, 64, 3)
    # 64 -> maxpool 3/2 (valid) -> 31 -> avgpool 2 -> 15; 15 * 15 * 64 features
    assert trunk.output_shape == (None, 15 * 15 * 64)
    kinds = [type(layer).__name__ for layer in trunk.layers]
    assert kinds.count("Conv2D") == 3 and kinds.count("BatchNormalization") == 3
    assert kinds.count("Add") == 1 and kinds.count("MaxPooling2D") == 1 and kinds.count("AveragePooling2D") == 1
    assert all(not layer.use_bias for layer in trunk.layers if isinstance(layer, keras.layers.Conv2D))
    pool = next(layer for layer in trunk.layers if isinstance(layer, keras.layers.MaxPooling2D))
    assert pool.pool_size == (3, 3) and pool.strides == (2, 2)
    # conv 3x3x3x64 + two conv 3x3x64x64 (no biases) + three BN (4 x 64 each)
    assert trunk.count_params() == 3 * 3 * 3 * 64 + 2 * 3 * 3 * 64 * 64 + 3 * 4 * 64


def test_output_keys_and_shapes_per_task_kind():
    tasks = [Task("smile"), Task("hair", kind="multiclass", num_classes=4), Task("age", kind="regression")]
    model = build_multitask_model(celeba_resnet_trunk(16), tasks)
    assert model.input.name == "image"
    outputs = model(np.zeros((2, 16, 16, 3), np.float32))
    assert list(outputs) == ["smile", "hair", "age"]
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {"smile": (2, 1), "hair": (2, 4), "age": (2, 1)}


def test_tabular_model_has_a_features_input_and_shares_its_trunk():
    model = build_multitask_model(mlp_trunk(5, hidden=(8, 4)), ["a", "b"])
    assert model.input.name == "features"
    assert [layer.name for layer in model.shared_layers] == ["trunk"]
    # the shared variables are the trunk's: two Dense layers, kernel and bias each
    assert [tuple(v.shape) for v in model.shared_variables] == [(5, 8), (8,), (8, 4), (4,)]
    assert len(model.trainable_variables) == 4 + 2 * 2


def test_heads_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_multitask_model(mlp_trunk(3, hidden=(4,)), ["a"])
        assert model(np.zeros((1, 3), np.float32))["a"].dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_bad_trunks_raise():
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    two_inputs = keras.Model([a, b], keras.layers.Concatenate()([a, b]))
    with pytest.raises(ValueError, match="exactly one input"):
        build_multitask_model(two_inputs, ["t"])
    image = keras.Input((8, 8, 3), name="image")
    not_flat = keras.Model(image, keras.layers.Conv2D(2, 3)(image))
    with pytest.raises(ValueError, match="flat features"):
        build_multitask_model(not_flat, ["t"])
    with pytest.raises(ValueError, match="hidden"):
        mlp_trunk(3, hidden=())
    with pytest.raises(ValueError, match="empty"):
        build_multitask_model(mlp_trunk(3), [])


def test_inference_flops_count_every_multiply_add():
    model = build_multitask_model(mlp_trunk(4, hidden=(8,)), ["a", "b", "c"])
    # Dense 4->8: 2*4*8 + 8 bias; three heads 8->1: 2*8 + 1 each (ReLU is not a float op here)
    assert inference_flops(model) == (2 * 4 * 8 + 8) + 3 * (2 * 8 + 1)
    conv = inference_flops(build_multitask_model(celeba_resnet_trunk(64), ["a"]))
    assert conv > 2 * (64 * 64 * 27 * 64 + 2 * 31 * 31 * 576 * 64)  # the three convolutions alone
