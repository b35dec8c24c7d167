"""Mode coverage on mixtures of Gaussians (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018).

Definitions (the protocol of both papers, 2500 samples by default in ganlab's evaluation):

- a generated sample is *high quality* when its Euclidean distance to the nearest mode mean is strictly
  less than ``threshold * std`` (threshold 3);
- a mode is *covered* when it is the nearest mean of at least one high-quality sample;
- ``modes`` is the number of covered modes out of ``n_modes``, ``hq`` the fraction of high-quality samples;
- ``reverse_kl`` is ``KL(p || u) = sum_k p_k log(p_k K)`` between the histogram ``p`` of the
  high-quality samples over their nearest modes and the uniform distribution ``u`` over the ``K``
  modes (0 log 0 = 0): 0 when every mode gets the same share, ``log K`` when all fall on one mode,
  NaN when there is no high-quality sample at all.

Declared (:meth:`ModeMetrics.meta`): ``modes`` in [0, K] and ``hq`` in [0, 1], higher better; ``reverse_kl``
in [0, log K], lower better; ``n_modes`` the constant K.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric

from ganlab.metrics.meta import MetricMeta


class ModeMetrics(Metric):
    """Streaming mode statistics: ``update`` may be called with batches of any size."""

    full_state_update = False

    def __init__(self, means: Tensor, std: float, threshold: float = 3.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.register_buffer("means", torch.as_tensor(means, dtype=torch.float64), persistent=False)
        self.radius = float(threshold) * float(std)
        self.add_state("counts", default=torch.zeros(len(self.means), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_total", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    @classmethod
    def from_datamodule(cls, datamodule, threshold: float = 3.0) -> ModeMetrics:
        """For data modules that declare ``n_modes`` and expose ``means`` and ``std`` (the Gaussian
        mixtures of ``ganlab.data.toy``); ``ValueError`` for data without modes."""
        if datamodule.n_modes is None:
            raise ValueError(
                f"the mode metrics (metrics=toy) need data with modes, but data {type(datamodule).__name__} "
                "declares none (its n_modes is None). Valid: a Gaussian mixture of ganlab.data.toy, or "
                "metrics=none."
            )
        return cls(datamodule.means, datamodule.std, threshold)

    def meta(self) -> dict[str, MetricMeta]:
        k = len(self.means)
        return {
            "modes": MetricMeta("max", 0, k),
            "n_modes": MetricMeta(None, k, k),
            "hq": MetricMeta("max", 0, 1),
            "reverse_kl": MetricMeta("min", 0, math.log(k)),
        }

    def protocol(self) -> dict[str, object]:
        return {
            "metric": "mode coverage (Srivastava et al. 2017; Lin et al. 2018)",
            "n_modes": len(self.means),
            # 3 x 0.05 is 0.15000000000000002 in floating point; the protocol states the radius meant
            "high_quality_radius": float(f"{self.radius:.12g}"),
        }

    def update(self, samples: Tensor) -> None:
        dist = torch.cdist(samples.detach().to(torch.float64).flatten(1), self.means.to(samples.device))
        nearest_dist, nearest = dist.min(dim=1)
        high_quality = nearest_dist < self.radius
        self.counts += torch.bincount(nearest[high_quality], minlength=len(self.means))
        self.n_total += samples.shape[0]

    def compute(self) -> dict[str, float]:
        n_hq = int(self.counts.sum())
        if n_hq == 0:
            kl = math.nan
        else:
            p = self.counts[self.counts > 0].double() / n_hq
            kl = float((p * (p * len(self.means)).log()).sum())
        return {
            "modes": int((self.counts > 0).sum()),
            "n_modes": len(self.means),
            "hq": n_hq / max(int(self.n_total), 1),
            "reverse_kl": kl,
        }
