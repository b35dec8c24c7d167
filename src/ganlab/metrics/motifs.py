"""Motif rate error on data with planted motifs (``ganlab.data.dna``), whose exact rates the data declares.

For each planted motif ``m`` (a sequence at a position), ``f_m`` is the fraction of generated sequences
that hold it at its position, and ``r_m`` the exact fraction in the data (planted, or drawn by chance from
the background: ``ganlab.data.dna``). ``motif_rate_error = (1/K) sum_m |f_m - r_m|`` over the ``K`` motifs,
in [0, 1]: 0 when every motif is generated as often as the data holds it.
"""

from __future__ import annotations

from typing import Any

import torch

from ganlab.data.vocabulary import Vocabulary
from ganlab.metrics.decoded import DecodedMetric, vocabulary_of
from ganlab.metrics.meta import MetricMeta


class MotifRateError(DecodedMetric):
    """``compute() -> {"motif_rate_error"}``; NaN for no generated sequence. ``motifs``: objects with
    ``sequence``, ``position``, ``end`` and ``expected_rate()`` (:class:`ganlab.data.dna.Motif`)."""

    def __init__(self, vocabulary: Vocabulary, motifs: tuple[Any, ...], **kwargs) -> None:
        super().__init__(vocabulary, **kwargs)
        if not motifs:
            raise ValueError("MotifRateError needs at least one planted motif")
        self.motifs = tuple(motifs)
        self.codes = [torch.as_tensor(vocabulary.encode(m.sequence), dtype=torch.int64) for m in self.motifs]

    @classmethod
    def from_datamodule(cls, datamodule) -> MotifRateError:
        vocabulary = vocabulary_of(datamodule, "motif rate")
        motifs = getattr(datamodule, "motifs", ())
        if not motifs:
            raise ValueError(
                f"the motif rate metric needs data with planted motifs, but data {type(datamodule).__name__} "
                "plants none. Valid: data=synthetic_dna with data.motifs, or metrics=sequence (k-mer JS "
                "divergence and memorisation only)."
            )
        return cls(vocabulary, motifs)

    def meta(self) -> dict[str, MetricMeta]:
        return {"motif_rate_error": MetricMeta("min", 0, 1)}

    def protocol(self) -> dict[str, Any]:
        return {
            "metric": "mean |generated - exact| rate of the planted motifs at their positions",
            "motifs": [[m.sequence, m.position, m.expected_rate()] for m in self.motifs],
        }

    def rates(self) -> list[float]:
        """The fraction of generated sequences holding each motif at its position."""
        fake = self.generated()
        return [
            float((fake[:, m.position : m.end] == code).all(dim=1).double().mean())
            for m, code in zip(self.motifs, self.codes, strict=True)
        ]

    def compute(self) -> dict[str, float]:
        if len(self.generated()) == 0:
            return {"motif_rate_error": float("nan")}
        errors = [abs(f - m.expected_rate()) for f, m in zip(self.rates(), self.motifs, strict=True)]
        return {"motif_rate_error": sum(errors) / len(errors)}
