"""What the sequence metrics (``ganlab.metrics.kmers``, ``.memorisation``, ``.motifs``) share: the check
that the data is sequences, and the generated samples decoded to symbol indices.

A generated sequence is ``(A, L)`` probabilities (softmax) or a one-hot sample (Gumbel-softmax); it decodes
to the most probable symbol of each position (argmax over ``A``), as in the WGAN-GP language model
(Gulrajani et al. 2017), so every metric is computed on the sequences a user of the samples would read.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ganlab.data.vocabulary import Vocabulary


def vocabulary_of(datamodule, metric: str) -> Vocabulary:
    """The vocabulary of sequence data; ``ValueError`` naming ``metric`` for any other data."""
    datamodule.setup("fit")
    if datamodule.vocabulary is None:
        raise ValueError(
            f"the {metric} metric needs sequence data, but data {type(datamodule).__name__} declares no "
            "vocabulary (its samples are not sequences). Valid: data=sequences or data=synthetic_dna, or "
            "another metrics option (metrics=none)."
        )
    return datamodule.vocabulary


class DecodedMetric(Metric):
    """Base class: ``update(fake)`` takes generated sequences ``(n, A, L)`` and keeps their symbol indices
    ``(n, L)`` (gathered across processes when computed); :meth:`generated` returns all of them."""

    full_state_update = False

    def __init__(self, vocabulary: Vocabulary, **kwargs) -> None:
        super().__init__(**kwargs)
        self.vocabulary = vocabulary
        self.add_state("fake", default=[], dist_reduce_fx="cat")

    def update(self, fake: Tensor) -> None:
        if tuple(fake.shape[1:]) != self.vocabulary.shape:
            raise ValueError(
                f"{type(self).__name__}: generated samples of shape {tuple(fake.shape[1:])}, but the "
                f"sequences are {self.vocabulary.shape} (alphabet, length)"
            )
        self.fake.append(Vocabulary.indices(fake.detach()).to(torch.int64))

    def generated(self) -> Tensor:
        """Every generated sequence so far as ``(N, L)`` symbol indices, on the CPU."""
        if isinstance(self.fake, list) and not self.fake:
            return torch.zeros(0, self.vocabulary.length, dtype=torch.int64)
        return dim_zero_cat(self.fake).cpu()
