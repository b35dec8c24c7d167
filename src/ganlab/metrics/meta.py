"""What a metric's value means, declared by the metric that reports it (``meta()``, keyed like the dict its
``compute`` returns): which way is better, and the range the value lies in. The evaluation callback writes
the declarations into ``summary.json`` (``metrics_meta``, keyed ``metrics/<value>``), where
``python -m ganlab.compare`` reads them; nothing else learns a metric's direction from its name.

JSON form: ``{"direction": "max" | "min" | null, "range": [low, high]}``, ``null`` for an unbounded end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DIRECTIONS = ("max", "min", None)


@dataclass(frozen=True)
class MetricMeta:
    """``direction``: ``"max"`` (higher is better), ``"min"`` (lower is better) or ``None`` (neither, e.g. a
    constant of the data). ``low`` <= value <= ``high``; ``None`` for an unbounded end. A value whose range
    is one point (``low == high``) is a constant of the data, not a result."""

    direction: str | None
    low: float | None = 0.0
    high: float | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"MetricMeta: direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"MetricMeta: range [{self.low}, {self.high}] is empty (low > high)")

    @property
    def constant(self) -> bool:
        return self.low is not None and self.low == self.high

    def to_json(self) -> dict[str, Any]:
        return {"direction": self.direction, "range": [self.low, self.high]}

    @classmethod
    def from_json(cls, value: Any) -> MetricMeta | None:
        """The declaration read back from ``summary.json``; ``None`` for anything that is not one."""
        try:
            low, high = value["range"]
            return cls(value["direction"], low, high)
        except (TypeError, KeyError, ValueError):
            return None
