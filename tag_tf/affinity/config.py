"""`AffinityConfig`: how affinity is collected during `fit()`.

>>> AffinityConfig(every_n_steps=10).to_json()
{'mode': 'exact', 'every_n_steps': 10, 'normalize_by_lr': True, 'max_epochs': 200}
>>> AffinityConfig(mode="second_order")
Traceback (most recent call last):
...
ValueError: Unknown affinity mode 'second_order'; valid modes: ('exact', 'first_order').
"""

from __future__ import annotations

import dataclasses

MODES = ("exact", "first_order")


@dataclasses.dataclass(frozen=True)
class AffinityConfig:
    """How affinity is collected during `fit()`.

    Attributes:
      mode: "exact" (lookahead forward passes, as in the paper) or "first_order" (Taylor estimate).
      every_n_steps: collect on every n-th optimizer step (1, every step, is the official code's
        setting; the paper suggests 10 as a speed-up).
      normalize_by_lr: divide Z by the learning rate, as the official TAG code does.
      max_epochs: how many epochs' means are kept (in model variables, so they survive a resume).
    """

    mode: str = "exact"
    every_n_steps: int = 1
    normalize_by_lr: bool = True
    max_epochs: int = 200

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"Unknown affinity mode {self.mode!r}; valid modes: {MODES}.")
        if not isinstance(self.every_n_steps, int) or self.every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive integer, got {self.every_n_steps!r}.")
        if not isinstance(self.max_epochs, int) or self.max_epochs < 1:
            raise ValueError(f"max_epochs must be a positive integer, got {self.max_epochs!r}.")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "AffinityConfig":
        return cls(**data)
