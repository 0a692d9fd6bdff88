"""`AffinityConfig`: how affinity is collected during `fit()`.

>>> AffinityConfig().every_n_steps                 # the default: adaptive sampling
'auto'
>>> AffinityConfig(every_n_steps=1).paper_schedule  # every step: the official TAG code's setting
True
>>> AffinityConfig(mode="group_lookahead", groups=[["a", "b"], ["a", "b", "c"]]).groups   # named groups
(('a', 'b'), ('a', 'b', 'c'))
>>> AffinityConfig(mode="second_order")
Traceback (most recent call last):
...
ValueError: Unknown affinity mode 'second_order'; valid modes: ('exact', 'first_order', 'cosine', 'group_lookahead').
"""

from __future__ import annotations

import dataclasses

MODES = ("exact", "first_order", "cosine", "group_lookahead")
AUTO = "auto"
MAX_GROUP_LOOKAHEADS = 256  # lookahead forwards per affinity step that mode="group_lookahead" may add


@dataclasses.dataclass(frozen=True)
class AffinityConfig:
    """How affinity is collected during `fit()`.

    Attributes:
      mode: "exact" (lookahead forward passes, as in the paper), "first_order" (their Taylor
        estimate, no extra forward), "cosine" (cosine similarity of the tasks' gradients on the
        shared variables, the paper's baseline; symmetric, not divided by the learning rate) or
        "group_lookahead" (exact's pairwise lookaheads, plus one lookahead per candidate group on
        the summed loss of its tasks, as the official TAG code's higher-order option; see
        `tag_tf.affinity.groups`). The formulas: `tag_tf.affinity.estimates`.
      groups: mode="group_lookahead" only: the candidate groups, each a sequence of task names
        (or one string "a+b+c", as on a command line); None: every group of 2 to
        `max_group_size` tasks. At most `MAX_GROUP_LOOKAHEADS` groups.
      max_group_size: mode="group_lookahead" with `groups=None`: the largest group measured.
      jit_compile: whether the affinity steps are compiled with XLA: None (the default) as
        `compile(jit_compile=...)` says for every step; True or False whatever it says (plain
        steps keep compile's setting); or "auto": where it is supported, i.e. one replica trains
        (Keras cannot compile a step under several replicas), the balancer computes the same
        under XLA (not PCGrad's random order) and Keras finds that every layer supports XLA (on CPU
        too, where Keras' own "auto" declines). Same matrix up to float rounding. XLA is not the
        default on CPU: on this project's machine it halved the per-task backward passes once and
        made the exact step 1.5x slower in later runs (BENCHMARKS.md).
      every_n_steps: "auto" (the default: adaptive sampling, `tag_tf.affinity.adaptive`) or a
        positive integer n: collect on every n-th optimizer step. `every_n_steps=1`, every step,
        is the paper's setting (the official TAG code's); the paper suggests 10 as a speed-up.
      normalize_by_lr: divide Z by the learning rate, as the official TAG code does.
      max_epochs: how many epochs' means are kept (in model variables, so they survive a resume).
      bootstrap_blocks: how many blocks of consecutive affinity steps are kept for the selection
        stability bootstrap (one step per block until they are full; then neighbours merge).
      auto_min_samples: "auto" collects at every step until every pair has this many samples.
      auto_precision: "auto" thins collection while the median standard error of the pairs is at
        most this fraction of the spread (standard deviation) of the pairs' means (both
        time-weighted: each sample weighs the optimizer steps it stands for).
      auto_max_interval: "auto" never collects less often than every this many steps (the floor,
        so that drift over training is still seen).
    """

    mode: str = "exact"
    groups: tuple[tuple[str, ...], ...] | None = None
    max_group_size: int = 3
    jit_compile: bool | str | None = None
    normalize_by_lr: bool = True
    max_epochs: int = 200
    bootstrap_blocks: int = 128
    every_n_steps: int | str = AUTO
    auto_min_samples: int = 20
    auto_precision: float = 0.25
    auto_max_interval: int = 100

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"Unknown affinity mode {self.mode!r}; valid modes: {MODES}.")
        if self.groups is not None:
            if self.mode != "group_lookahead":
                raise ValueError(f"groups={self.groups!r} are measured by mode='group_lookahead' only, got "
                                 f"mode={self.mode!r}.")
            if isinstance(self.groups, str) or not all(self.groups):
                raise ValueError(f"groups must be a sequence of groups, each a sequence of task names or one string "
                                 f"'a+b+c', got {self.groups!r}.")
            groups = tuple(tuple(g.split("+")) if isinstance(g, str) else tuple(str(t) for t in g)
                           for g in self.groups)  # "a+b": from a command line
            bad = [g for g in groups if len(set(g)) != len(g)]
            if bad or len(set(map(frozenset, groups))) != len(groups):
                raise ValueError(f"groups must name each task once per group and each group once, got {groups!r}.")
            object.__setattr__(self, "groups", groups)
        if isinstance(self.jit_compile, str) and self.jit_compile.lower() in ("true", "false"):  # a command line's
            object.__setattr__(self, "jit_compile", self.jit_compile.lower() == "true")
        if self.jit_compile not in (None, AUTO, True, False):
            raise ValueError(f"jit_compile must be None (as compile() says), 'auto', True or False, got "
                             f"{self.jit_compile!r}.")
        if isinstance(self.every_n_steps, str) and self.every_n_steps.isdigit():  # from a command line
            object.__setattr__(self, "every_n_steps", int(self.every_n_steps))
        every = self.every_n_steps
        if every != AUTO and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ValueError(f"every_n_steps must be 'auto' or a positive integer (1: every step, the paper's "
                             f"setting), got {self.every_n_steps!r}.")
        for name in ("max_epochs", "auto_min_samples", "auto_max_interval", "max_group_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if isinstance(self.bootstrap_blocks, bool) or not isinstance(self.bootstrap_blocks, int) \
                or self.bootstrap_blocks < 2 or self.bootstrap_blocks % 2:
            raise ValueError(f"bootstrap_blocks must be an even integer >= 2, got {self.bootstrap_blocks!r}.")
        if not self.auto_precision > 0:
            raise ValueError(f"auto_precision must be > 0, got {self.auto_precision!r}.")

    @property
    def adaptive(self) -> bool:
        """Whether collection follows the adaptive ("auto") schedule."""
        return self.every_n_steps == AUTO

    @property
    def paper_schedule(self) -> bool:
        """Whether affinity is collected at every step, as in the paper."""
        return self.every_n_steps == 1

    def to_json(self) -> dict:
        """The fields as a dict.

        >>> AffinityConfig(every_n_steps=10).to_json()["every_n_steps"]
        10
        """
        data = dataclasses.asdict(self)
        data["groups"] = None if self.groups is None else [list(g) for g in self.groups]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "AffinityConfig":
        return cls(**data)
