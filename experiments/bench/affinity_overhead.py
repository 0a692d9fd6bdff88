"""What measuring affinity costs: training time of each affinity setting against plain training.

    python -m experiments.bench.affinity_overhead [--timed_steps=40] [--noxla] [--noprofile]

One run, one machine: the TAG CelebA trunk with the paper's 9 attribute heads, 64x64 images from
the CelebA folder's training split, batch 64, SGD(5e-4, momentum 0.9). Every variant is built
from the same initial weights (`keras.utils.set_random_seed` before each build, checked) and
trains on the same pre-decoded batches in the same order (`--warmup_steps` + `--timed_steps`
batches, `shuffle=False`), so the input pipeline is not measured and the runs are comparable:

  plain                      affinity=None
  exact, every step          AffinityConfig(mode="exact", every_n_steps=1)
  exact, every 10 steps      AffinityConfig(mode="exact", every_n_steps=10)
  first_order, every step    AffinityConfig(mode="first_order", every_n_steps=1)
  exact, every 40 steps      the full-CelebA preset's setting (`PRESETS["celeba"]`), the default
                             configuration of a long run (AffinityConfig() itself is every step)
  XLA (--xla)                plain and exact-every-step with compile(jit_compile=True), fewer steps

The variants train in interleaved rounds (one `fit()` of `--every_n_steps` batches per variant
per round, the order rotating), so that load from other processes on a shared machine falls on
all of them alike. Reported per variant: seconds per step after the warm-up steps that trace the
train functions (mean, and a median-based figure robust to load bursts, which the ratios use),
its ratio to a plain step, all its `fit()` calls (tracing included) against plain's, and how
closely its affinity matrix A[source, target] agrees with exact-every-step's after the same
steps: Spearman correlation of the off-diagonal entries (as they are, and with each target's
column mean removed), and whether `select_groups` picks the same groups (same groups, each task
served by the same group) for each `--budgets` k. Targets (checked and printed): exact every step
at most (1 + 0.7 k)x a plain step for k tasks; the full-CelebA preset's setting at most 1.25x
plain training over its run: its robust per-step ratio, since its 63,600 steps dwarf the one-time
tracing of the train functions (reported too; in this short benchmark it dominates "whole run"). `--profile` times the parts of one exact affinity step separately (where
the time goes). Prints progress through absl logging and the results as Markdown.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import time

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from scipy import stats  # noqa: E402

from tag_tf.affinity import AffinityConfig, lookahead_deltas  # noqa: E402
from tag_tf.data import celeba  # noqa: E402
from tag_tf.data.pipeline import batched  # noqa: E402
from tag_tf.utils.gradients import gradient_dot, tape_gradient  # noqa: E402
from tag_tf.models import build_multitask_model, celeba_resnet_trunk  # noqa: E402
from tag_tf.run import PAPER_CELEBA_TASKS, PRESETS  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("celeba_dir", PRESETS["celeba_sample"].data.celeba_dir, "Official CelebA folder.")
flags.DEFINE_integer("image_size", 64, "Side of the square images.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_integer("warmup_steps", 2, "Untimed first steps of every run (they trace the train functions; "
                     "at least 2, so that exact-every-10 traces both its lookahead and its plain step).")
flags.DEFINE_integer("timed_steps", 80, "Timed steps of every run, after the warm-up (a multiple of "
                     "--every_n_steps and of PRESETS['celeba'].affinity.every_n_steps, so that the every-n "
                     "runs time whole cycles).")
flags.DEFINE_integer("every_n_steps", 10, "every_n_steps of the cheaper exact setting.")
flags.DEFINE_list("budgets", ["2", "3"], "Numbers of groups k for the grouping comparison.")
flags.DEFINE_boolean("xla", True, "Also time plain and exact-every-step with jit_compile=True.")
flags.DEFINE_integer("xla_rounds", 1, "Rounds (of --every_n_steps timed steps) that the XLA runs take part in.")
flags.DEFINE_boolean("profile", True, "Time the parts of one exact affinity step separately.")
flags.DEFINE_integer("profile_repeats", 3, "Repetitions of each timed part in --profile.")
flags.DEFINE_float("quiet_load", 0.25, "A step counts as quiet when other processes kept fewer CPU cores than "
                   "this busy; the per-step figures use the quiet steps (this machine may be shared).")
flags.DEFINE_float("wait_for_quiet", 60.0, "Before each chunk of steps, wait up to this many seconds for other "
                   "processes to drop below --quiet_load (0: never wait).")
flags.DEFINE_float("learning_rate", 5e-4, "SGD learning rate.")
flags.DEFINE_integer("seed", 0, "Seed of the initial weights (the same for every variant).")


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    affinity: AffinityConfig | None
    jit_compile: bool = False


class Run:
    """One variant's model, trained in chunks of steps (`fit()` per chunk) and timed step by step.

    The variants' chunks are interleaved round by round, so that background load on a shared
    machine falls on every variant alike.
    """

    def __init__(self, variant: Variant, reference_fingerprint=None, snapshot_after=()):
        self.variant = variant
        self.model = build(variant.affinity, variant.jit_compile)
        self.fingerprint = weights_fingerprint(self.model)
        if reference_fingerprint is not None and self.fingerprint != reference_fingerprint:
            raise RuntimeError(f"{variant.name}: initial weights differ from plain's "
                               f"({self.fingerprint!r} != {reference_fingerprint!r}).")
        self.timer = StepTimer(snapshot_after if variant.affinity is not None else ())
        self.whole_seconds = 0.0  # the fit() calls, tracing included
        self.other_cpu_seconds = 0.0  # CPU time used by other processes meanwhile (Linux; else NaN)
        self.steps = 0
        self.error = None

    def train(self, batches: tf.data.Dataset, count: int) -> None:
        """The next `count` batches (continuing where the previous chunk stopped)."""
        start, busy = time.perf_counter(), other_cpu_seconds()
        self.model.fit(batches.skip(self.steps).take(count), epochs=1, verbose=0, shuffle=False,
                       callbacks=[self.timer])
        self.whole_seconds += time.perf_counter() - start
        self.other_cpu_seconds += other_cpu_seconds() - busy
        self.steps += count
        if len(self.timer.seconds) != self.steps:
            raise RuntimeError(f"{self.variant.name}: {len(self.timer.seconds)} steps ran, expected {self.steps}.")

    @property
    def jit_compile(self) -> bool:
        return bool(self.model.jit_compile)  # as Keras resolved it

    @property
    def matrix(self):
        return self.model.task_affinity().matrix if self.variant.affinity is not None else None

    @property
    def snapshots(self) -> dict:
        return self.timer.snapshots

    @property
    def step_seconds(self) -> list:
        return self.timer.seconds

    @property
    def affinity_step(self) -> np.ndarray:
        """Per step: was it a lookahead step (optimizer iteration divisible by every_n_steps)."""
        every = self.variant.affinity.every_n_steps if self.variant.affinity else 0
        return np.array([bool(every) and i % every == 0 for i in range(self.steps)])

    def timed(self, warmup) -> np.ndarray:
        return np.array(self.timer.seconds[warmup:])

    def mean_per_step(self, warmup) -> float:
        return float(self.timed(warmup).mean())

    def quiet(self, warmup) -> np.ndarray:
        """Per timed step: did other processes stay below --quiet_load cores (True where unknown)."""
        load = np.array(self.timer.other_load[warmup:])
        return ~(load >= FLAGS.quiet_load)

    def per_step(self, warmup) -> float:
        return self.robust_per_step(warmup)[0]

    def robust_per_step(self, warmup) -> tuple[float, str]:
        """Seconds per step, robust to load from other processes; and how many steps it used.

        The median over the quiet timed steps (see `quiet`), or over every timed step when fewer than
        3 were quiet; for every-n runs (median lookahead step + (n − 1) · median other step) / n, each
        median taken that way, which is their mean cost per step when the timed steps are whole cycles.
        """
        seconds, lookahead, quiet = self.timed(warmup), self.affinity_step[warmup:], self.quiet(warmup)
        kinds = [lookahead, ~lookahead] if lookahead.any() and not lookahead.all() else [np.ones_like(quiet)]
        medians, used = [], []
        for kind in kinds:
            chosen = kind & quiet if (kind & quiet).sum() >= 3 else kind
            medians.append(float(np.median(seconds[chosen])))
            used.append(f"{int(chosen.sum())}/{int(kind.sum())}")
        if len(kinds) == 1:
            return medians[0], used[0]
        every = self.variant.affinity.every_n_steps
        return (medians[0] + (every - 1) * medians[1]) / every, " + ".join(used)


def other_cpu_seconds() -> float:
    """CPU seconds used so far by every process but this one (from /proc; NaN where there is none)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    return (busy - int(own[11]) - int(own[12])) / os.sysconf("SC_CLK_TCK")  # minus utime, stime


def wait_for_quiet(limit: float) -> float:
    """Wait, up to `limit` seconds, until other processes use under --quiet_load cores for 1 s; seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        before, sampled = other_cpu_seconds(), time.perf_counter()
        time.sleep(1.0)
        if not (other_cpu_seconds() - before) / (time.perf_counter() - sampled) >= FLAGS.quiet_load:
            break
    return time.perf_counter() - start


class StepTimer(keras.callbacks.Callback):
    """Wall time and other processes' load of every train step; the affinity matrix after chosen steps."""

    def __init__(self, snapshot_after=()):
        super().__init__()
        self.seconds, self.other_load = [], []  # other load: cores busy with other processes
        self.snapshot_after, self.snapshots = set(snapshot_after), {}

    def on_train_batch_begin(self, batch, logs=None):
        self._start, self._other = time.perf_counter(), other_cpu_seconds()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        self.other_load.append((other_cpu_seconds() - self._other) / self.seconds[-1])
        if len(self.seconds) in self.snapshot_after:
            self.snapshots[len(self.seconds)] = self.model.task_affinity().matrix


def describe(config: AffinityConfig | None) -> str:
    if config is None:
        return "plain"
    every = "every step" if config.every_n_steps == 1 else f"every {config.every_n_steps} steps"
    return f"{config.mode}, {every}"


def weights_fingerprint(model: keras.Model) -> float:
    return float(sum(np.sum(np.abs(w.numpy()), dtype=np.float64) for w in model.trainable_weights))


def build(config: AffinityConfig | None, jit_compile: bool = False) -> keras.Model:
    keras.utils.set_random_seed(FLAGS.seed)
    model = build_multitask_model(celeba_resnet_trunk(FLAGS.image_size), PAPER_CELEBA_TASKS, affinity=config)
    model.compile(optimizer=keras.optimizers.SGD(FLAGS.learning_rate, momentum=0.9), jit_compile=jit_compile)
    return model


# --- agreement ----------------------------------------------------------------------------------


def spearman_off_diagonal(a: np.ndarray, b: np.ndarray, centre_columns: bool = False) -> float:
    """Spearman correlation of the off-diagonal entries of two A[source, target] matrices.

    With `centre_columns`, each target's column mean (over its sources) is removed first, so that
    only the ranking of sources within a target counts, not how responsive each target is.
    """
    mask = ~np.eye(len(a), dtype=bool)
    if not (np.isfinite(a[mask]).all() and np.isfinite(b[mask]).all()):
        return float("nan")
    if centre_columns:
        a, b = (np.where(mask, m, np.nan) for m in (a, b))
        a, b = (m - np.nanmean(m, axis=0, keepdims=True) for m in (a, b))
    return float(stats.spearmanr(a[mask], b[mask]).statistic)


def served_groups(grouping) -> dict:
    """task -> the set of tasks of the group serving it (independent of group order)."""
    return {task: frozenset(grouping.groups[i]) for task, i in grouping.assignment.items()}


def groupings(select_groups, matrix: np.ndarray, budgets) -> dict:
    if select_groups is None or not np.isfinite(matrix).all():
        return {}
    return {k: select_groups(matrix, k, tasks=list(PAPER_CELEBA_TASKS)) for k in budgets}


def format_groups(grouping) -> str:
    return " + ".join("{" + ", ".join(g) + "}" for g in grouping.groups)


# --- profile ------------------------------------------------------------------------------------


def profile_exact_step(model, x, y, repeats: int, xla: bool) -> list[tuple[str, float | str]]:
    """Seconds of the parts of one exact affinity step, each its own tf.function (mean of `repeats`).

    Each part calls the library's own code as `MultiTaskModel.affinity_train_step` does (single
    replica, no loss scaling, no sample weights): `task_losses`, each task's gradient on
    `shared_variables` + its `task_variables()` (`tape_gradient`), `lookahead_deltas`,
    `lookahead_losses`, `gradient_dot`; last, that whole step itself (which updates the model).
    With `xla`, the heavy parts are timed again with jit_compile=True.
    """
    shared, own = model.shared_variables, model.task_variables()
    k = len(model.tasks)

    def forward():
        return model.task_losses(y, model(x, training=True))

    def plain_gradients():
        with tf.GradientTape() as tape:
            objective = tf.add_n(list(forward().values()))
        return tape.gradient(objective, model.trainable_variables)

    def per_task_gradients():
        with tf.GradientTape(persistent=True) as tape:
            losses = list(forward().values())
        return [tape_gradient(tape, loss, shared + own_i) for loss, own_i in zip(losses, own)]

    def trunk_jacobian():  # one batched (pfor) backward pass for all k task losses
        with tf.GradientTape() as tape:
            losses = tf.stack(list(forward().values()))
        return tape.jacobian(losses, shared, experimental_use_pfor=True)

    grads = [g[: len(shared)] for g in tf.function(per_task_gradients, autograph=False)()]

    def deltas():
        return [lookahead_deltas(model.optimizer, g, shared) for g in grads]

    delta_values = tf.function(deltas, autograph=False)()

    def lookahead_forwards():
        return model.lookahead_losses(x, y, delta_values)

    def first_order_dots():
        return tf.stack([tf.stack([gradient_dot(g_j, delta_i) for g_j in grads]) for delta_i in delta_values])

    # The lookahead must move the losses, or the timings below would measure no real lookahead.
    before = np.array([float(loss) for loss in forward().values()])
    moved = np.abs(tf.function(lookahead_forwards, autograph=False)().numpy() - before[None, :])
    if not moved.max() > 0:
        raise RuntimeError("profile: the lookahead forwards do not change any loss; the profile is broken.")

    parts = [
        ("forward (training=True) + task losses", forward, False),
        ("forward + one backward (a plain step's gradients)", plain_gradients, False),
        (f"forward + {k} per-task backward passes (persistent tape, as the affinity step)", per_task_gradients, False),
        (f"forward + {k} trunk gradients as one tape.jacobian (pfor)", trunk_jacobian, False),
        (f"{k} lookahead steps Δi (optimizer rule)", deltas, False),
        (f"{k} lookahead forwards (model.lookahead_losses)", lookahead_forwards, False),
        (f"first-order dots ({k}x{k})", first_order_dots, False),
        ("the whole step (model.affinity_train_step, update included)", lambda: model.affinity_train_step((x, y)),
         False),
    ]
    if xla:
        parts += [
            ("XLA: forward + one backward", plain_gradients, True),
            (f"XLA: forward + {k} per-task backward passes", per_task_gradients, True),
            (f"XLA: {k} lookahead forwards", lookahead_forwards, True),
        ]
    timings = []
    for name, python_function, jit_compile in parts:
        fn = tf.function(python_function, autograph=False, jit_compile=jit_compile)
        try:
            fn()  # trace (and compile)
            wait_for_quiet(FLAGS.wait_for_quiet)
            start = time.perf_counter()
            for _ in range(repeats):
                tf.nest.map_structure(lambda t: t.numpy(), fn())
            timings.append((name, (time.perf_counter() - start) / repeats))
        except Exception as error:  # reported in the table, not hidden
            timings.append((name, f"{type(error).__name__}: {str(error).strip().splitlines()[0][:120]}"))
        logging.info("profile: %s: %s", name, timings[-1][1])
    return timings


# --- main ---------------------------------------------------------------------------------------


def yes_no(value: bool) -> str:
    return "yes" if value else "**no**"


def main(argv):
    del argv
    begin = time.perf_counter()
    warmup, timed, every = FLAGS.warmup_steps, FLAGS.timed_steps, FLAGS.every_n_steps
    if warmup < 2:
        raise ValueError(f"--warmup_steps must be at least 2, got {warmup}.")
    long_run = PRESETS["celeba"].affinity
    cycle = math.lcm(every, long_run.every_n_steps)
    if timed < 1 or timed % cycle:
        raise ValueError(f"--timed_steps must be a positive multiple of {cycle} (--every_n_steps={every} and the "
                         f"celeba preset's every {long_run.every_n_steps} steps), got {timed}.")
    if FLAGS.xla_rounds < 0 or FLAGS.xla_rounds * every > timed:
        raise ValueError(f"--xla_rounds must be in [0, {timed // every}], got {FLAGS.xla_rounds}.")
    budgets = [int(b) for b in FLAGS.budgets]
    steps = warmup + timed
    rounds = timed // every
    k = len(PAPER_CELEBA_TASKS)
    load_before = os.getloadavg()
    try:
        from tag_tf.selection import select_groups
        selection_note = ""
    except Exception as error:  # the selection module may still be in progress
        select_groups = None
        selection_note = (f"tag_tf.selection.select_groups unavailable ({type(error).__name__}: {error}); "
                          f"grouping comparison skipped.")
        logging.warning(selection_note)

    logging.info("decoding %d batches of %d images at %dx%d", steps, FLAGS.batch_size, FLAGS.image_size,
                 FLAGS.image_size)
    train = celeba.load_folder(FLAGS.celeba_dir, PAPER_CELEBA_TASKS, "train", image_size=FLAGS.image_size)
    batches = batched(train, FLAGS.batch_size, drop_remainder=True).take(steps).cache()
    decoded = sum(1 for _ in batches)  # fill the cache: training reads decoded tensors from memory
    if decoded != steps:
        raise ValueError(f"The training split has only {decoded} full batches; --warmup_steps + --timed_steps "
                         f"= {steps}.")

    exact = AffinityConfig(mode="exact", every_n_steps=1)
    variants = [
        Variant("plain", None),
        Variant("exact, every step", exact),
        Variant(f"exact, every {every} steps", AffinityConfig(mode="exact", every_n_steps=every)),
        Variant("first_order, every step", AffinityConfig(mode="first_order", every_n_steps=1)),
    ]
    if all(v.affinity != long_run for v in variants):
        variants.append(Variant(f"{describe(long_run)} (celeba preset)", long_run))
    xla_steps = warmup + FLAGS.xla_rounds * every
    xla_variants = [Variant("plain, XLA", None, True), Variant("exact, every step, XLA", exact, True)]
    if not FLAGS.xla or not FLAGS.xla_rounds:
        xla_variants = []

    runs, xla_errors = {}, {}
    reference = None
    for variant in variants + xla_variants:
        snapshots = (xla_steps,) if variant.affinity == exact and not variant.jit_compile else ()
        runs[variant.name] = Run(variant, reference, snapshots)
        reference = runs[variant.name].fingerprint if reference is None else reference
    logging.info("same initial weights in all %d models (checked); %.0fs elapsed", len(runs),
                 time.perf_counter() - begin)

    schedule = [warmup] + [every] * rounds
    waited = 0.0
    for r, count in enumerate(schedule):
        names = [v.name for v in variants] + [v.name for v in xla_variants if r <= FLAGS.xla_rounds]
        names = names[r % len(names):] + names[: r % len(names)]  # rotate the order round by round
        for name in names:
            run = runs[name]
            if run.error:
                continue
            waited += wait_for_quiet(FLAGS.wait_for_quiet)
            try:
                run.train(batches, count)
            except Exception as error:
                if not run.variant.jit_compile:
                    raise
                message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
                run.error = xla_errors[name] = f"{type(error).__name__}: {message}"
                logging.warning("%s failed: %s", name, run.error)
                continue
            this_round = run.step_seconds[-count:]
            logging.info("round %d/%d, %s: %d steps; this round: first step %.2fs, mean %.2fs/step (%.0fs elapsed)",
                         r, rounds, name, run.steps, this_round[0], float(np.mean(this_round)),
                         time.perf_counter() - begin)
    training_seconds = time.perf_counter() - begin
    load_after = os.getloadavg()

    reference_matrix = runs["exact, every step"].matrix  # before the profile, which trains that model on
    profile = []
    if FLAGS.profile:
        logging.info("[profile] parts of one exact step (%.0fs elapsed)", time.perf_counter() - begin)
        x, y = next(iter(batches))
        profile = profile_exact_step(runs["exact, every step"].model, x, y, FLAGS.profile_repeats, FLAGS.xla)

    # --- report ---------------------------------------------------------------------------------
    plain = runs["plain"]
    plain_step, plain_whole = plain.per_step(warmup), plain.whole_seconds
    reference_groups = groupings(select_groups, reference_matrix, budgets)
    target_exact = 1 + 0.7 * k

    print(f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU, "
          f"TensorFlow {tf.__version__} / Keras {keras.__version__}; load average (1 min) "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after training.")
    print(f"Settings: TAG CelebA trunk, {k} tasks, {FLAGS.image_size}x{FLAGS.image_size}, batch "
          f"{FLAGS.batch_size}, SGD({FLAGS.learning_rate:g}, momentum 0.9), seed {FLAGS.seed}; every run "
          f"{steps} steps on the same pre-decoded batches ({warmup} warm-up + {timed} timed, in {rounds} "
          f"interleaved rounds of {every}); XLA runs {xla_steps} steps. AffinityConfig() = {describe(AffinityConfig())} "
          f"(the official code's setting); the full-CelebA preset's: {describe(long_run)}.\n")
    print(f"s/step: mean of the timed steps, and robust: the median over the quiet steps (other processes kept "
          f"under {FLAGS.quiet_load:g} cores busy; every step if fewer than 3 were quiet), for every-n runs (median "
          f"lookahead step + (n − 1) · median other step) / n; quiet steps: how many it used (lookahead + other). "
          f"The ratios and targets use the robust figure. Whole run: every fit() of the variant, tracing included "
          f"(not robust to load). Waited {waited:.0f} s in all for quiet before chunks. "
          "Spearman: off-diagonal entries of A vs exact-every-step's after the same steps, as they are and with "
          "each target's column mean removed (which sources help a target most). Other load: CPU cores busy with "
          "other processes while the variant trained (of " + str(os.cpu_count()) + ").\n")
    print("| variant | s/step (mean) | s/step (robust) | quiet steps | ratio to plain | whole run s | "
          "whole-run ratio | target | met? | Spearman vs exact | Spearman, column-centred | same groups | other load |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---|---:|")

    def row(name, run, agreement=True):
        step, used = run.robust_per_step(warmup)
        ratio = step / plain_step
        config = run.variant.affinity
        whole = "—"
        targets = []
        if config == exact:
            targets.append((f"step ≤ {target_exact:.1f}x", ratio <= target_exact))
        if config == long_run:
            targets.append(("long run ≤ 1.25x", ratio <= 1.25))
        if agreement:  # same steps as plain
            whole = f"{run.whole_seconds / plain_whole:.2f}x"
        target = "; ".join(t for t, _ in targets) or "—"
        met = "; ".join(yes_no(m) for _, m in targets) or "—"
        rho, centred, same = "—", "—", "—"
        if agreement and config is not None and config != exact:
            rho = f"{spearman_off_diagonal(run.matrix, reference_matrix):.3f}"
            centred = f"{spearman_off_diagonal(run.matrix, reference_matrix, centre_columns=True):.3f}"
            groups = groupings(select_groups, run.matrix, budgets)
            if groups and reference_groups:
                same = ", ".join(f"k={b}: {yes_no(served_groups(groups[b]) == served_groups(reference_groups[b]))}"
                                 for b in budgets)
            else:
                same = "n/a (selection unavailable)" if select_groups is None else "n/a (non-finite matrix)"
        elif config == exact and agreement:
            rho, centred, same = "1 (reference)", "1 (reference)", "(reference)"
        print(f"| {name} | {run.mean_per_step(warmup):.3f} | {step:.3f} | {used} | {ratio:.2f}x | "
              f"{run.whole_seconds:.1f} | {whole} | {target} | {met} | {rho} | {centred} | {same} | "
              f"{run.other_cpu_seconds / run.whole_seconds:.2f} |")

    for variant in variants:
        row(variant.name, runs[variant.name])
    for variant in xla_variants:
        if variant.name not in xla_errors:
            row(f"{variant.name} ({xla_steps - warmup} timed steps)", runs[variant.name], agreement=False)
    for name, error in xla_errors.items():
        print(f"| {name} | failed: {error} | | | | | | | | | | | |")

    cycle = runs[f"exact, every {every} steps"]
    seconds, lookahead, quiet = cycle.timed(warmup), cycle.affinity_step[warmup:], cycle.quiet(warmup)
    print(f"\nexact every {every} steps, medians of the quiet steps: lookahead steps "
          f"{np.median(seconds[lookahead & quiet]) if (lookahead & quiet).any() else float('nan'):.3f} s, other "
          f"steps {np.median(seconds[~lookahead & quiet]) if (~lookahead & quiet).any() else float('nan'):.3f} s "
          f"(plain {plain_step:.3f} s). ", end="")
    print("First (tracing) step: " + ", ".join(
        f"{name} {run.step_seconds[0]:.1f} s" for name, run in runs.items() if not run.error) + ".")
    if "exact, every step, XLA" in runs and "exact, every step, XLA" not in xla_errors:
        exact_run, exact_xla = runs["exact, every step"], runs["exact, every step, XLA"]
        plain_xla = runs.get("plain, XLA")
        same_steps = exact_run.snapshots[xla_steps]
        text = (f"XLA: exact step {exact_xla.per_step(warmup):.3f} s, "
                f"{exact_xla.per_step(warmup) / exact_run.per_step(warmup):.2f}x the non-XLA exact step")
        if plain_xla is not None and not plain_xla.error:
            text += (f"; plain step {plain_xla.per_step(warmup):.3f} s, "
                     f"{plain_xla.per_step(warmup) / plain_step:.2f}x the non-XLA plain step; exact/plain both with "
                     f"XLA: {exact_xla.per_step(warmup) / plain_xla.per_step(warmup):.2f}x")
        text += (f". XLA exact vs non-XLA exact matrix after the same {xla_steps} steps: Spearman "
                 f"{spearman_off_diagonal(exact_xla.matrix, same_steps):.4f}, max |difference| "
                 f"{np.nanmax(np.abs(exact_xla.matrix - same_steps)):.3g} "
                 f"(entries up to {np.nanmax(np.abs(same_steps)):.3g}).")
        print(text)
    if selection_note:
        print(selection_note)
    elif reference_groups:
        print("Groups of exact every step: " + "; ".join(
            f"k={b}: {format_groups(g)}" for b, g in reference_groups.items()) + ".")
        for variant in variants[2:]:
            groups = groupings(select_groups, runs[variant.name].matrix, budgets)
            differing = [f"k={b}: {format_groups(g)}" for b, g in groups.items()
                         if served_groups(g) != served_groups(reference_groups[b])]
            if differing:
                print(f"Groups of {variant.name} where they differ: " + "; ".join(differing) + ".")

    print(f"\nAffinity of exact every step after {steps} steps, A[source, target] (rows: source):\n")
    short = [t.replace("_", " ")[:11] for t in PAPER_CELEBA_TASKS]
    print("| source \\ target | " + " | ".join(short) + " |")
    print("|---|" + "---:|" * k)
    for name, values in zip(short, reference_matrix):
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |")

    if profile:
        exact_step = runs["exact, every step"].per_step(warmup)
        print(f"\nOne exact affinity step in parts (each its own tf.function on one batch, mean of "
              f"{FLAGS.profile_repeats}; the measured exact step above: {exact_step:.3f} s, plain step "
              f"{plain_step:.3f} s):\n")
        print("| part | s | share of an exact step |")
        print("|---|---:|---:|")
        for name, seconds in profile:
            if isinstance(seconds, str):
                print(f"| {name} | failed: {seconds} | |")
            else:
                print(f"| {name} | {seconds:.3f} | {100 * seconds / exact_step:.0f}% |")
    print(f"\nBenchmark wall time: {time.perf_counter() - begin:.0f} s (training {training_seconds:.0f} s).")


if __name__ == "__main__":
    app.run(main)
