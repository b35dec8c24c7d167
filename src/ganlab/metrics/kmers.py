"""Jensen-Shannon divergence between the k-mer frequencies of generated and held-out real sequences, the
measure of the WGAN-GP language model (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs",
section 6.2 and table 2: n-gram JS divergence, n = 4 and 6).

For each ``k`` of ``ks``, ``P`` and ``Q`` are the relative frequencies of the k-mers (the ``L - k + 1``
windows of ``k`` consecutive symbols of every sequence, a window holding a pad symbol left out) of the
generated and of the held-out sequences, and with ``M = (P + Q) / 2``

    JS(P, Q) = 1/2 sum_w P(w) log2(P(w) / M(w)) + 1/2 sum_w Q(w) log2(Q(w) / M(w))   (0 log 0 = 0),

in bits, so in [0, 1]: 0 for equal frequencies, 1 for disjoint k-mers. ``kmer_js_<k>`` is each, ``kmer_js``
their mean over ``ks``. A finite sample of even the real distribution has a divergence above 0 from the
held-out set (k-mers seen in one sample and not in the other), more for longer k-mers and fewer samples:
``kmer_js_real`` is the same mean for as many training sequences as there are generated ones (drawn with
``real_seed``), the value a generator that reproduces the data would get.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ganlab.data.vocabulary import Vocabulary
from ganlab.metrics.decoded import DecodedMetric, vocabulary_of
from ganlab.metrics.meta import MetricMeta


def kmer_counts(indices: Tensor, k: int, size: int, pad_index: int | None = None) -> tuple[Tensor, Tensor]:
    """The distinct k-mers of ``(N, L)`` symbol indices over ``size`` symbols, each coded as the base-``size``
    number of its symbols, and how often each occurs; windows holding ``pad_index`` are left out."""
    windows = indices.long().unfold(1, k, 1).reshape(-1, k)  # (N * (L - k + 1), k)
    if pad_index is not None:
        windows = windows[(windows != pad_index).all(dim=1)]
    powers = size ** torch.arange(k - 1, -1, -1, dtype=torch.int64)
    return torch.unique(windows @ powers, return_counts=True)


def js_divergence(p: tuple[Tensor, Tensor], q: tuple[Tensor, Tensor]) -> float:
    """JS divergence in bits of two frequency tables ``(keys, counts)`` (module docstring); NaN when
    either is empty."""
    (p_keys, p_counts), (q_keys, q_counts) = p, q
    if int(p_counts.sum()) == 0 or int(q_counts.sum()) == 0:
        return float("nan")
    keys, where = torch.unique(torch.cat([p_keys, q_keys]), return_inverse=True)
    dense = torch.zeros(2, len(keys), dtype=torch.float64)
    dense[0].index_add_(0, where[: len(p_keys)], p_counts.double())
    dense[1].index_add_(0, where[len(p_keys) :], q_counts.double())
    dense /= dense.sum(dim=1, keepdim=True)
    mean = dense.mean(dim=0, keepdim=True)
    terms = torch.where(dense > 0, dense * torch.log2(dense / mean), torch.zeros_like(dense))
    return float(terms.sum() / 2)


class KmerJS(DecodedMetric):
    """k-mer JS divergence of generated sequences to the held-out real ones (module docstring);
    ``compute() -> {"kmer_js_<k>" for k in ks, "kmer_js", "kmer_js_real"}``."""

    def __init__(
        self,
        vocabulary: Vocabulary,
        heldout: Tensor,
        train: Tensor,
        ks: tuple[int, ...] = (1, 2, 3, 4, 5, 6),
        real_seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(vocabulary, **kwargs)
        self.ks = tuple(int(k) for k in ks)
        length, size = vocabulary.length, vocabulary.size
        bad = [k for k in self.ks if not 1 <= k <= length or size**k >= 2**62]
        if not self.ks or bad:
            raise ValueError(
                f"KmerJS: ks={list(ks)} is invalid for sequences of length {length} over {size} symbols: "
                f"{bad or 'no k'}. Valid: k in 1..{length} with {size}^k < 2^62"
            )
        if len(heldout) == 0:
            raise ValueError(
                "KmerJS compares generated sequences with held-out ones, but the data holds none out: set "
                "data.heldout > 0 (data=sequences) or data.n_heldout > 0 (data=synthetic_dna)"
            )
        self.train, self.real_seed, self.n_heldout = train, int(real_seed), len(heldout)
        self.real = {k: kmer_counts(heldout, k, size, vocabulary.pad_index) for k in self.ks}

    @classmethod
    def from_datamodule(
        cls, datamodule, ks: tuple[int, ...] = (1, 2, 3, 4, 5, 6), real_seed: int = 0
    ) -> KmerJS:
        vocabulary = vocabulary_of(datamodule, "k-mer JS divergence")
        return cls(vocabulary, datamodule.heldout, datamodule.train_sequences(), tuple(ks), real_seed)

    def meta(self) -> dict[str, MetricMeta]:
        """Lower is better, in [0, 1] bits; ``kmer_js_real`` is a reference of the data, no result."""
        js = MetricMeta("min", 0, 1)
        return {
            **{f"kmer_js_{k}": js for k in self.ks},
            "kmer_js": js,
            "kmer_js_real": MetricMeta(None, 0, 1),
        }

    def protocol(self) -> dict[str, Any]:
        return {
            "metric": "k-mer Jensen-Shannon divergence in bits (Gulrajani et al. 2017)",
            "ks": list(self.ks),
            "n_heldout": self.n_heldout,
            "real_seed": self.real_seed,
        }

    def divergences(self, indices: Tensor) -> dict[int, float]:
        """The JS divergence of each ``k`` between ``indices`` and the held-out sequences."""
        size, pad = self.vocabulary.size, self.vocabulary.pad_index
        return {k: js_divergence(kmer_counts(indices, k, size, pad), self.real[k]) for k in self.ks}

    def compute(self) -> dict[str, float]:
        fake = self.generated()
        values = {f"kmer_js_{k}": v for k, v in self.divergences(fake).items()}
        values["kmer_js"] = sum(values.values()) / len(self.ks)
        pick = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(self.real_seed))
        real = self.divergences(self.train[pick[: len(fake)]])
        values["kmer_js_real"] = sum(real.values()) / len(self.ks)
        return values
