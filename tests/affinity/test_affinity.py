"""Affinity: the lookahead rules against real optimizer steps, and the model's Z against an
independent reference that copies the model and takes a real `optimizer.apply` step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tag_tf import affinity
from tag_tf.affinity import AffinityConfig, TaskAffinity
from tag_tf.balancing import PCGrad
from tag_tf.data import synthetic
from tag_tf.data.pipeline import batched
from tag_tf.models import build_multitask_model, celeba_resnet_trunk, mlp_trunk
from tag_tf.tasks import Task
from affinity_reference import copy_optimizer, measured_affinity, reference_affinity, small_batch

OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.05),
    "momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    "nesterov": lambda: keras.optimizers.SGD(0.05, momentum=0.8, nesterov=True),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "amsgrad": lambda: keras.optimizers.Adam(0.01, amsgrad=True),
    "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
    "sgd_decay_clipnorm": lambda: keras.optimizers.SGD(0.05, momentum=0.5, weight_decay=0.01, clipnorm=0.3),
    "adam_clipvalue": lambda: keras.optimizers.Adam(0.01, clipvalue=0.05),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_lookahead_delta_equals_a_real_optimizer_step(name):
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=(3, 2)).astype("float32")), keras.Variable(rng.normal(size=(2,)).astype("float32"))]
    optimizer = OPTIMIZERS[name]()
    optimizer.build(variables)
    for _ in range(3):  # non-zero momentum and moments
        optimizer.apply([tf.constant(rng.normal(size=v.shape), tf.float32) for v in variables], variables)
    grads = [tf.constant(rng.normal(size=v.shape), tf.float32) for v in variables]
    before = [v.numpy() for v in variables]
    deltas = affinity.lookahead_deltas(optimizer, grads, variables)
    np.testing.assert_array_equal(variables[0].numpy(), before[0])  # nothing was mutated

    copies = [keras.Variable(v) for v in before]
    copy_optimizer(optimizer, copies).apply(grads, copies)
    for delta, old, new in zip(deltas, before, copies):
        np.testing.assert_allclose(delta.numpy(), old - new.numpy(), rtol=1e-5, atol=1e-7)


def test_unsupported_optimizers_are_refused_with_the_valid_choices():
    with pytest.raises(ValueError, match=r"no rule for optimizer RMSprop; supported: \('SGD', 'Adam', 'AdamW'\)"):
        affinity.check_optimizer(keras.optimizers.RMSprop())
    with pytest.raises(ValueError, match="global_clipnorm=1.0 is not supported"):
        affinity.check_optimizer(keras.optimizers.SGD(global_clipnorm=1.0))
    with pytest.raises(ValueError, match="gradient_accumulation_steps=4"):
        affinity.check_optimizer(keras.optimizers.Adam(gradient_accumulation_steps=4))
    affinity.check_optimizer(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()))


def test_bad_config_values():
    modes = r"\('exact', 'first_order', 'cosine', 'group_lookahead'\)"
    with pytest.raises(ValueError, match=rf"Unknown affinity mode 'second'; valid modes: {modes}"):
        AffinityConfig(mode="second")
    with pytest.raises(ValueError, match="every_n_steps"):
        AffinityConfig(every_n_steps=0)
    with pytest.raises(ValueError, match="max_epochs must be a positive integer, got 0"):
        AffinityConfig(max_epochs=0)
    assert AffinityConfig().every_n_steps == "auto" and AffinityConfig().adaptive  # the default
    assert AffinityConfig(every_n_steps="1").every_n_steps == 1  # from a command line
    with pytest.raises(ValueError, match=r"every_n_steps must be 'auto' or a positive integer .* got 'sometimes'"):
        AffinityConfig(every_n_steps="sometimes")
    for name, value, message in (("auto_max_interval", 0, "a positive integer"), ("auto_precision", 0.0, "> 0"),
                                 ("bootstrap_blocks", 3, "an even integer >= 2")):
        with pytest.raises(ValueError, match=f"{name} must be {message}, got {value}"):
            AffinityConfig(**{name: value})


@pytest.mark.parametrize("opt_name, image, xla", [("sgd", False, False), ("momentum", False, False),
                                                  ("adam", False, False), ("momentum", True, False),
                                                  ("momentum", True, True)])
def test_exact_affinity_equals_the_reference(opt_name, image, xla):
    """Also with the affinity step compiled with XLA (`AffinityConfig(jit_compile=True)`)."""
    x, y = small_batch(image=image)
    trunk = celeba_resnet_trunk(12, filters=4) if image else mlp_trunk(6, hidden=(8, 8))
    model = build_multitask_model(trunk, list(y), affinity=AffinityConfig(every_n_steps=1, jit_compile=xla))
    model.compile(optimizer=OPTIMIZERS[opt_name]())
    assert model.affinity_jit_compile() == xla
    for seed in (1, 2, 3):  # a few steps first, so that momentum and moments are non-zero
        model.train_on_batch(*small_batch(image=image, seed=seed))
    expected = reference_affinity(model, model.optimizer, x, y)
    measured = measured_affinity(model, x, y)
    # float32: Z = (1 − after/before) / lr loses digits to cancellation; agreement to 1e-5 absolute
    np.testing.assert_allclose(measured, expected, rtol=0, atol=1e-5)
    assert np.abs(expected).max() > 1e-3  # and the values are far from trivially small


def test_affinity_steps_compile_with_xla_where_asked_and_supported():
    def model(config=AffinityConfig(jit_compile="auto"), balancer=None, **compile_args):
        built = build_multitask_model(mlp_trunk(6, hidden=(4,)), ["a", "b"], affinity=config, balancer=balancer)
        built.compile(optimizer="sgd", **compile_args)
        return built

    assert model().affinity_jit_compile()  # one replica, every layer supports XLA: on CPU too
    assert not model().jit_compile  # plain steps as compile() says (Keras: no XLA on CPU)
    assert not model(AffinityConfig()).affinity_jit_compile()  # the default: as compile() says
    assert model(AffinityConfig(), jit_compile=True).affinity_jit_compile()
    assert not model(AffinityConfig(jit_compile=False), jit_compile=True).affinity_jit_compile()
    assert model(AffinityConfig(jit_compile="true")).affinity_jit_compile()  # a command line's
    assert not model(run_eagerly=True).affinity_jit_compile()
    assert not model(balancer=PCGrad()).affinity_jit_compile()  # its random order differs under XLA
    with pytest.raises(ValueError, match=r"jit_compile must be None \(.*\), 'auto', True or False, got 'sometimes'"):
        AffinityConfig(jit_compile="sometimes")


def test_first_order_approaches_exact_as_the_learning_rate_shrinks():
    x, y = small_batch()
    errors = []
    for lr in (1e-1, 1e-2):
        matrices = {}
        for mode in ("exact", "first_order"):
            keras.utils.set_random_seed(0)
            model = build_multitask_model(mlp_trunk(6, hidden=(8,)), list(y), affinity=AffinityConfig(mode=mode))
            model.compile(optimizer=keras.optimizers.SGD(lr))
            model.train_on_batch(x, y)
            matrices[mode] = model.task_affinity().matrix
        errors.append(np.abs(matrices["first_order"] - matrices["exact"]).max() / np.abs(matrices["exact"]).max())
    assert errors[1] < 1e-2 and errors[1] < errors[0] / 3


def test_every_n_steps_and_per_epoch_means():
    data = synthetic.planted_groups_tabular(num_groups=2, tasks_per_group=2, num_examples=400, seed=0)
    model = build_multitask_model(mlp_trunk(32, hidden=(16,)), data.tasks, affinity=AffinityConfig(every_n_steps=3))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    model.fit(batched(data.splits["train"], 32), epochs=2, verbose=0)  # 10 steps per epoch
    result = model.task_affinity()
    assert result.steps == 7  # optimizer steps 0, 3, 6, ..., 18
    assert len(result.epochs) == 2
    counts = model.affinity_accumulator.count.numpy()
    np.testing.assert_array_equal(counts, np.full((4, 4), 7.0))
    np.testing.assert_array_equal(model.affinity_accumulator.weight.numpy(), 3 * counts)  # each stands for 3 steps
    # the run mean is the count-weighted mean of the epoch means (4 steps in epoch 1, 3 in epoch 2)
    np.testing.assert_allclose(result.matrix, (4 * result.epochs[0] + 3 * result.epochs[1]) / 7, rtol=1e-5)
    model.fit(batched(data.splits["train"], 32), epochs=1, verbose=0)  # a further fit adds its epoch
    assert len(model.task_affinity().epochs) == 3


def test_per_epoch_means_stop_at_max_epochs_but_the_matrix_goes_on():
    x, y = small_batch()
    model = build_multitask_model(mlp_trunk(6, hidden=(4,)), list(y),
                                  affinity=AffinityConfig(every_n_steps=1, max_epochs=2))
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    result = model.task_affinity()
    assert len(result.epochs) == 2 and result.steps == 6


def test_unlabelled_task_contributes_nothing_and_zero_loss_is_skipped_and_counted():
    x, y = small_batch(num_tasks=3)
    y["t2"] = np.full_like(y["t2"], -1)  # no labelled example of t2 in this batch
    tasks = [Task("t0"), Task("t1"), Task("t2"), Task("r", kind="regression")]
    y["r"] = np.zeros(len(x), "float32")
    model = build_multitask_model(mlp_trunk(6, hidden=(8,)), tasks, affinity=AffinityConfig())
    head = model.get_layer("head_r")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])  # predicts exactly 0: zero loss
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    model.train_on_batch(x, y)
    counts = model.affinity_accumulator.count.numpy()
    assert counts[:2, :2].tolist() == [[1, 1], [1, 1]]
    assert counts[2].sum() == 0 and counts[:, 2].sum() == 0  # unlabelled: no sample, no skip
    assert counts[:, 3].sum() == 0  # target with zero loss: skipped
    assert model.task_affinity().skipped == 3  # sources t0, t1, r onto r
    assert np.isnan(model.task_affinity().matrix[0, 2])


def test_within_group_affinity_exceeds_cross_group_on_planted_data():
    """Every within-group affinity exceeds every cross-group affinity, all pairs at once.

    The planted groups' tasks cut their group's factors at the same place (threshold_range=0), so
    they are near-duplicates of each other and share nothing with the other groups' tasks. (With
    thresholds spread over [-0.5, 0.5], the default, the order holds onto every target, column by
    column, but some seeds mix the columns: affinity onto an easy task is larger overall.)
    """
    data = synthetic.planted_groups(num_groups=3, tasks_per_group=3, num_examples=2000, image_size=16, seed=0,
                                    threshold_range=0.0)
    model = build_multitask_model(celeba_resnet_trunk(16, filters=16), data.tasks,
                                  affinity=AffinityConfig(every_n_steps=1))
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    model.fit(batched(data.splits["train"], 64, shuffle_buffer=2000), epochs=3, verbose=0, shuffle=False)
    matrix = model.task_affinity().matrix
    group = np.repeat(np.arange(3), 3)
    within = (group[:, None] == group[None, :]) & ~np.eye(9, dtype=bool)
    across = group[:, None] != group[None, :]
    assert matrix[within].min() > matrix[across].max(), (matrix[within].min(), matrix[across].max())


def test_task_affinity_json_round_trip(tmp_path):
    result = TaskAffinity(("a", "b"), np.array([[0.5, np.nan], [-1.0, 2.0]]),
                          epochs=(np.eye(2),), steps=3, skipped=1)
    path = str(tmp_path / "affinity.json")
    result.to_json(path)
    loaded = TaskAffinity.from_json(path)
    assert loaded.tasks == ("a", "b") and loaded.steps == 3 and loaded.skipped == 1
    np.testing.assert_array_equal(loaded.matrix, result.matrix)
    np.testing.assert_array_equal(loaded.epochs[0], np.eye(2))


def test_plain_model_collects_nothing():
    model = build_multitask_model(mlp_trunk(6, hidden=(4,)), ["a"])
    with pytest.raises(ValueError, match="collects no affinity"):
        model.task_affinity()


@pytest.mark.parametrize("policy, tolerance", [("mixed_float16", 0.03), ("mixed_bfloat16", 0.12)])
def test_mixed_precision_gives_the_float32_matrix_within_tolerance(policy, tolerance):
    """Losses and Z are float32 whatever the policy; the trunk's activations are not, so the
    matrices differ by rounding: within 3% (float16) or 12% (bfloat16, 8-bit mantissa) of the
    largest entry, over 8 steps."""
    data = synthetic.planted_groups(num_groups=2, tasks_per_group=2, num_examples=320, image_size=16, seed=0)
    matrices = {}
    for name in ("float32", policy):
        keras.mixed_precision.set_global_policy(name)
        try:
            keras.utils.set_random_seed(0)
            model = build_multitask_model(celeba_resnet_trunk(16, filters=8), data.tasks,
                                          affinity=AffinityConfig(every_n_steps=1))
            model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
            model.fit(batched(data.splits["train"], 32), epochs=1, verbose=0, shuffle=False)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        if name == "mixed_float16":
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        matrices[name] = model.task_affinity().matrix
        assert model.task_affinity().skipped == 0
    scale = np.abs(matrices["float32"]).max()
    assert np.abs(matrices[policy] - matrices["float32"]).max() < tolerance * scale


class StepValues(keras.callbacks.Callback):
    """Every affinity step's Z (the increase of the model's running sum), all pairs valid."""

    def __init__(self):
        super().__init__()
        self.z = []

    def on_train_batch_end(self, batch, logs=None):
        total = self.model.affinity_accumulator.total.numpy().astype(np.float64)
        self.z.append(total - sum(self.z, np.zeros_like(total)))


def test_running_variance_stderr_and_blocks_equal_numpy_on_the_per_step_values():
    x, y = small_batch(n=80)
    model = build_multitask_model(mlp_trunk(6, hidden=(8,)), list(y),
                                  affinity=AffinityConfig(every_n_steps=1, bootstrap_blocks=4))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    recorder = StepValues()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False, callbacks=[recorder])  # 10 steps
    z = np.array(recorder.z)
    result = model.task_affinity()
    assert result.steps == len(z) == 10
    variance = model.affinity_accumulator.m2.numpy() / (len(z) - 1)
    np.testing.assert_allclose(variance, np.var(z, axis=0, ddof=1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.stderr, np.std(z, axis=0, ddof=1) / np.sqrt(len(z)), rtol=1e-4, atol=1e-6)
    assert np.std(z, axis=0).min() > 1e-3  # the steps differ: a real variance
    # 4 blocks: steps 0-3 one each; at step 4 they merge into pairs (0-1, 2-3), steps 4-5 and 6-7 fill
    # the other two; at step 8 those merge again: blocks of 4 steps, 4, and 2
    np.testing.assert_allclose(np.array(result.blocks), [z[0:4].mean(0), z[4:8].mean(0), z[8:10].mean(0)],
                               rtol=1e-4, atol=1e-5)
    assert [int(c[0, 1]) for c in result.block_counts] == [4, 4, 2]
    loaded = TaskAffinity.from_json(result.to_json())
    np.testing.assert_array_equal(loaded.stderr, result.stderr)
    np.testing.assert_array_equal(np.array(loaded.blocks), np.array(result.blocks))


def test_auto_schedule_collects_at_the_steps_of_a_hand_trace():
    """The real schedule and accumulator on fixed per-step values of two tasks, each affinity step
    weighted as the model weights it (`AffinitySchedule.weight`: the steps since the previous one):
    A[a, b] is always 1, A[b, a] is 0 except 4 at iteration 8. Rule: min_samples 3, precision 0.3,
    max_interval 4. a->b is constant (σ 0), so the median standard error is half b->a's.

    it 0, 1: fewer than 3 samples -> interval 1.  it 2: both pairs constant, σ 0 -> the largest
    allowed, 2.  it 4 (weight 2) -> 4.  it 8 (weight 4): b->a holds 0, 0, 0, 0, 4 with weights
    1, 1, 1, 2, 4: V1 9, V2 23, mean 16/9, M2 = 5 (16/9)² + 4 (4 − 16/9)² = 35.56, σ² = M2 /
    (9 − 23/9) = 5.52; target 0.3 · spread (16/9 − 1) / 2 = 0.117; se(d) = σ sqrt(23 + d²) / (9 + d)
    is 1.151, 1.110, 1.107, 1.128 for d = 1..4 (median half of it): never precise, so the weight
    that adds the most precision, d = 3 (V2 / V1 = 2.6).  Then every 3 steps (V2 / V1 stays near
    3) while b->a's mean 16 / (it + 1) falls and the spread grows.  it 59: V1 60, V2 176, M2 59.73,
    σ² 1.047, target 0.3 · (1 − 16/60) / 2 = 0.110; median se(d) for d = 1..4: 0.1116, 0.1107,
    0.1105, 0.1107: not yet -> 3.  it 62: V1 63, V2 185, M2 59.94, σ² 0.998, target 0.112, median
    se(4) = 0.106 -> 4 (the floor)."""
    from tag_tf.affinity import AffinityAccumulator
    from tag_tf.training.schedule import AffinitySchedule

    config = AffinityConfig(auto_min_samples=3, auto_precision=0.3, auto_max_interval=4)
    owner = keras.layers.Layer()
    accumulator, schedule = AffinityAccumulator(["a", "b"], max_epochs=1), AffinitySchedule(config)
    accumulator.build(owner)
    schedule.build(owner)
    collected, weights = [], []

    def affinity_step(iteration):
        collected.append(iteration)
        weights.append(float(schedule.weight()))
        z = np.array([[0.0, 1.0], [4.0 if iteration == 8 else 0.0, 0.0]], "float32")
        accumulator.add(z, valid=np.ones((2, 2), bool), skipped=np.zeros((2, 2), bool), weight=schedule.weight())

    for iteration in range(75):
        schedule.run(iteration, lambda _: None, affinity_step, accumulator, iteration)
    assert collected == [0, 1, 2, 4, 8, *range(11, 63, 3), 66, 70, 74]
    assert weights == [1, 1, 1, 2, 4, *[3] * 18, 4, 4, 4]
    assert weights == list(np.diff([-1, *collected]))  # each sample stands for the steps since the previous
    result = accumulator.result()
    assert result.matrix[1, 0] == pytest.approx(16 / 75)  # the 4 times its 4 steps, over steps 0-74
    values = np.array([4.0 if it == 8 else 0.0 for it in collected])
    w = np.array(weights)
    mean = np.average(values, weights=w)
    variance = np.sum(w * (values - mean) ** 2) / (w.sum() - np.sum(w ** 2) / w.sum())
    assert result.stderr[1, 0] == pytest.approx(np.sqrt(variance * np.sum(w ** 2) / w.sum() ** 2), rel=1e-5)


def test_auto_schedule_with_the_runs_end_known_spreads_the_samples_to_come():
    """The hand trace's values and settings, with the run's end planned at iteration 75 (as `fit()`
    plans it): the rule asks whether sampling every d steps to the end reaches the precision.

    it 0-4 as without the end (the pairs are constant until it 8).  it 8: σ 2.349, target 0.117,
    66 steps left: every step gives V1 75, V2 89, median se 2.349 · sqrt(89) / 75 / 2 = 0.148, every
    2 steps more (0.195): not reachable, so every step, the most precision.  it 39: V1 40, V2 54,
    M2 57.6, σ² 1.490, target 0.3 · (1 − 0.4) / 2 = 0.090, 35 left: every step 0.077, every 2 steps
    (17 samples of weight 2) sqrt(1.490 (54 + 68)) / 74 / 2 = 0.0911 > 0.090 -> 1.  it 40: V1 41,
    V2 55, M2 57.76, σ² 1.456, target 0.0915, 34 left: every 2 steps sqrt(1.456 (55 + 68)) / 75 / 2
    = 0.0892 -> 2 (at most double).  Then 2, 3, 3 and 4 (the floor) to the end."""
    from tag_tf.affinity import AffinityAccumulator
    from tag_tf.training.schedule import AffinitySchedule

    config = AffinityConfig(auto_min_samples=3, auto_precision=0.3, auto_max_interval=4)
    owner = keras.layers.Layer()
    accumulator, schedule = AffinityAccumulator(["a", "b"], max_epochs=1), AffinitySchedule(config)
    accumulator.build(owner)
    schedule.build(owner)
    schedule.plan(75)
    collected = []

    def affinity_step(iteration):
        collected.append(iteration)
        z = np.array([[0.0, 1.0], [4.0 if iteration == 8 else 0.0, 0.0]], "float32")
        accumulator.add(z, valid=np.ones((2, 2), bool), skipped=np.zeros((2, 2), bool), weight=schedule.weight())

    for iteration in range(75):
        schedule.run(iteration, lambda _: None, affinity_step, accumulator, iteration)
    assert collected == [0, 1, 2, 4, *range(8, 41), 42, 44, 47, 50, 54, 58, 62, 66, 70, 74]
    assert schedule.remaining(74) == 0 and schedule.remaining(75) is None


def weighted_reference(z, w, valid):
    """numpy: the time-weighted mean, M2, V1, V2 and stderr of samples z [steps, ...] with weights
    w [steps] where `valid` [steps, ...]."""
    weights = w.reshape(-1, *[1] * (z.ndim - 1)) * valid
    v1, v2 = weights.sum(0), (weights ** 2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN where a pair has no sample
        mean = (weights * z).sum(0) / v1
        m2 = (weights * (z - mean) ** 2).sum(0)
        variance = m2 / (v1 - v2 / v1)  # reliability weights: unbiased for one sample's variance
        return mean, m2, v1, v2, np.sqrt(variance * v2 / v1 ** 2)  # Var(mean) = σ² Σw² / (Σw)² = σ² / n_eff


def test_weighted_mean_variance_stderr_epochs_blocks_and_groups_equal_numpy():
    """A fixed sequence of 12 affinity steps with fixed intervals (the steps each stands for),
    two samples of pair a->c invalid, an epoch boundary after step 5, 4 bootstrap blocks, one
    candidate group: every running quantity equals numpy's on the same values."""
    from tag_tf.affinity import AffinityAccumulator

    rng = np.random.default_rng(3)
    steps = 12
    z = rng.normal(size=(steps, 3, 3)).astype(np.float32)
    group_z = rng.normal(size=(steps, 1, 3)).astype(np.float32)
    w = np.array([1, 1, 1, 2, 4, 8, 4, 2, 1, 1, 2, 4], np.float64)
    valid = np.ones((steps, 3, 3), bool)
    valid[[3, 7], 0, 2] = False
    group_valid = np.broadcast_to(np.array([[True, True, False]]), (steps, 1, 3))
    accumulator = AffinityAccumulator(["a", "b", "c"], max_epochs=2, blocks=4, groups=[("a", "b")])
    accumulator.build(keras.layers.Layer())
    accumulator.mark_epoch()
    for step in range(steps):
        accumulator.add(z[step], valid[step], np.zeros((3, 3), bool), group_z[step], group_valid[step],
                        weight=w[step])
        if step == 5:
            accumulator.mark_epoch()
    accumulator.mark_epoch()
    result = accumulator.result()
    z64 = z.astype(np.float64)
    mean, m2, v1, v2, stderr = weighted_reference(z64, w, valid)
    np.testing.assert_allclose(result.matrix, mean, rtol=1e-5)
    np.testing.assert_allclose(accumulator.m2.numpy(), m2, rtol=1e-4)
    np.testing.assert_array_equal(accumulator.weight.numpy(), v1)
    np.testing.assert_array_equal(accumulator.weight2.numpy(), v2)
    np.testing.assert_allclose(result.stderr, stderr, rtol=1e-4)
    assert accumulator.weight.numpy()[0, 2] == w.sum() - w[3] - w[7] and accumulator.count.numpy()[0, 2] == 10
    # per-epoch means: the time-weighted means of steps 0-5 and 6-11
    np.testing.assert_allclose(result.epochs[0], weighted_reference(z64[:6], w[:6], valid[:6])[0], rtol=1e-5)
    np.testing.assert_allclose(result.epochs[1], weighted_reference(z64[6:], w[6:], valid[6:])[0], rtol=1e-5)
    # blocks: steps 0-3 one each; at step 4 pairs merge, then at step 8 again: steps 0-3, 4-7, 8-11
    for block, (lo, hi) in enumerate([(0, 4), (4, 8), (8, 12)]):
        np.testing.assert_allclose(result.blocks[block], weighted_reference(z64[lo:hi], w[lo:hi], valid[lo:hi])[0],
                                   rtol=1e-5)
        np.testing.assert_array_equal(result.block_weights[block], (w[lo:hi, None, None] * valid[lo:hi]).sum(0))
        np.testing.assert_array_equal(result.block_counts[block], valid[lo:hi].sum(0))
    # the bootstrap's weighted mean of all the blocks is the run's matrix
    blocks_mean = sum(b * bw for b, bw in zip(result.blocks, result.block_weights)) / sum(result.block_weights)
    np.testing.assert_allclose(blocks_mean, result.matrix, rtol=1e-5)
    group_mean, _, _, _, group_stderr = weighted_reference(group_z.astype(np.float64), w, group_valid)
    assert result.group_affinity[("a", "b")] == pytest.approx({"a": group_mean[0, 0], "b": group_mean[0, 1]},
                                                              rel=1e-5)
    assert result.group_stderr[("a", "b")] == pytest.approx({"a": group_stderr[0, 0], "b": group_stderr[0, 1]},
                                                            rel=1e-4)
    # the group's blocks: the same steps as the pairs', weighted alike
    for block, (lo, hi) in enumerate([(0, 4), (4, 8), (8, 12)]):
        for j, t in enumerate(("a", "b")):
            expected = np.sum(w[lo:hi] * group_z[lo:hi, 0, j]) / np.sum(w[lo:hi])
            assert result.group_blocks[("a", "b")][t][block] == pytest.approx(expected, rel=1e-5)
            assert result.group_block_weights[("a", "b")][t][block] == np.sum(w[lo:hi])
            assert result.group_block_counts[("a", "b")][t][block] == hi - lo
    loaded = TaskAffinity.from_json(result.to_json())
    np.testing.assert_array_equal(np.array(loaded.block_weights), np.array(result.block_weights))
    for t in ("a", "b"):
        np.testing.assert_array_equal(loaded.group_block_weights[("a", "b")][t], result.group_block_weights[("a", "b")][t])


def test_equal_weights_give_the_plain_mean_variance_and_stderr():
    """every_n_steps=n weighs every sample n: the plain mean and standard error (ddof 1), whatever n."""
    from tag_tf.affinity import AffinityAccumulator

    z = np.random.default_rng(4).normal(size=(9, 2, 2)).astype(np.float32)
    results = []
    for weight in (1.0, 7.0):
        accumulator = AffinityAccumulator(["a", "b"], max_epochs=1, blocks=4)
        accumulator.build(keras.layers.Layer())
        for sample in z:
            accumulator.add(sample, np.ones((2, 2), bool), np.zeros((2, 2), bool), weight=weight)
        results.append(accumulator.result())
    for result in results:
        np.testing.assert_allclose(result.matrix, z.mean(0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(result.stderr, z.std(0, ddof=1) / 3, rtol=1e-4)
    np.testing.assert_allclose(np.array(results[1].blocks), np.array(results[0].blocks), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(np.array(results[1].block_weights), 7 * np.array(results[0].block_weights))


class WeightedStepValues(keras.callbacks.Callback):
    """Every affinity step's Z and weight (the increases of the model's running Σ w z and Σ w)."""

    def __init__(self):
        super().__init__()
        self.total, self.weight = [], []

    def on_train_batch_begin(self, batch, logs=None):
        accumulator = self.model.affinity_accumulator
        self._before = accumulator.total.numpy().astype(np.float64), accumulator.weight.numpy().astype(np.float64)

    def on_train_batch_end(self, batch, logs=None):
        accumulator = self.model.affinity_accumulator
        weight = accumulator.weight.numpy()[0, 1] - self._before[1][0, 1]
        if weight:
            self.total.append(accumulator.total.numpy() - self._before[0])
            self.weight.append(weight)


def test_auto_schedule_weights_each_sample_by_the_steps_since_the_previous_one_in_a_real_fit():
    """A real fit with the adaptive schedule: each affinity step adds its samples with the weight
    of the optimizer steps since the previous affinity step (1 for the first), and the matrix and
    standard errors are the time-weighted ones of numpy on the recorded values."""
    from tag_tf.training import AffinitySteps

    x, y = small_batch(n=160)
    model = build_multitask_model(mlp_trunk(6, hidden=(8,)), list(y),
                                  affinity=AffinityConfig(auto_min_samples=4, auto_precision=10.0, auto_max_interval=8))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    recorder, collected = WeightedStepValues(), AffinitySteps()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[recorder, collected])  # 40 steps
    steps = collected.steps
    assert 4 < len(steps) < 30 and max(np.diff(steps)) > 2  # it thinned
    assert int(model.affinity_schedule.end.numpy()) == 40  # fit() planned the run's end: 1 epoch x 40 steps
    assert recorder.weight == list(np.diff([-1, *steps]).astype(float))
    w = np.array(recorder.weight)
    z = np.array(recorder.total) / w[:, None, None]
    mean, _, _, _, stderr = weighted_reference(z, w, np.ones(z.shape, bool))
    result = model.task_affinity()
    np.testing.assert_allclose(result.matrix, mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.stderr, stderr, rtol=1e-3, atol=1e-6)
    assert not np.allclose(mean, z.mean(0), rtol=1e-3)  # the weights matter on this run
    model.fit(x, y, batch_size=4, initial_epoch=1, epochs=3, verbose=0, shuffle=False)  # epochs 2 and 3 go on
    assert int(model.affinity_schedule.end.numpy()) == 40 + 2 * 40


def test_affinity_file_without_stderr_or_blocks_still_loads():
    old = {"tasks": ["a", "b"], "matrix": [[None, 0.5], [0.25, None]], "epochs": [], "steps": 4, "skipped": 0}
    loaded = TaskAffinity.from_json(old)
    assert loaded.stderr is None and loaded.blocks == () and loaded.matrix[0, 1] == 0.5
    assert "stderr" not in loaded.to_json()
    # blocks written before samples were weighted: each sample weighs 1, so the weights are the counts
    unweighted = {**old, "blocks": [{"mean": [[None, 0.5], [0.25, None]], "count": [[0, 3], [3, 0]]}]}
    loaded = TaskAffinity.from_json(unweighted)
    np.testing.assert_array_equal(loaded.block_weights[0], [[0.0, 3.0], [3.0, 0.0]])
    assert loaded.to_json()["blocks"][0]["weight"] == [[0.0, 3.0], [3.0, 0.0]]
