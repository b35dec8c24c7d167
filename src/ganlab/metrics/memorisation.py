"""Memorisation and diversity of generated sequences, counted on the decoded sequences.

- ``memorised``: the fraction of generated sequences that are exact copies of a training sequence (every
  position equal, pads included), the check of a generator that reproduces its training set (as done for
  generated DNA and proteins, e.g. Killoran et al. 2017; Repecka et al. 2021, "Expanding functional protein
  sequence spaces using generative adversarial networks").
- ``distinct``: the number of distinct generated sequences over the number generated, which falls towards
  ``1/N`` as the generator collapses onto few outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from ganlab.data.vocabulary import Vocabulary
from ganlab.metrics.decoded import DecodedMetric, vocabulary_of
from ganlab.metrics.meta import MetricMeta


def row_keys(indices: Tensor) -> list[bytes]:
    """One hashable key per row of ``(N, L)`` symbol indices: equal keys for equal rows."""
    return [row.tobytes() for row in np.ascontiguousarray(indices.cpu().numpy().astype(np.int64))]


class Memorisation(DecodedMetric):
    """``compute() -> {"memorised", "distinct"}`` (module docstring); NaN for no generated sequence."""

    def __init__(self, vocabulary: Vocabulary, train: Tensor, **kwargs) -> None:
        super().__init__(vocabulary, **kwargs)
        self.train_keys = set(row_keys(train))
        self.n_train = len(train)

    @classmethod
    def from_datamodule(cls, datamodule) -> Memorisation:
        return cls(vocabulary_of(datamodule, "memorisation"), datamodule.train_sequences())

    def meta(self) -> dict[str, MetricMeta]:
        return {"memorised": MetricMeta("min", 0, 1), "distinct": MetricMeta("max", 0, 1)}

    def protocol(self) -> dict[str, Any]:
        return {"metric": "exact copies of training sequences; distinct samples", "n_train": self.n_train}

    def compute(self) -> dict[str, float]:
        keys = row_keys(self.generated())
        if not keys:
            return {"memorised": float("nan"), "distinct": float("nan")}
        copies = sum(key in self.train_keys for key in keys)
        return {"memorised": copies / len(keys), "distinct": len(set(keys)) / len(keys)}
