"""The machinery shared by the metrics that compare generated and real images in a feature space
(``ganlab.metrics.fid``, ``.kid``, ``.prdc``): the feature network, the cached real-data statistics and the
protocol record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from ganlab.metrics import cache
from ganlab.metrics.cache import RealStats, real_statistics, split_of
from ganlab.metrics.features import ASSETS, FeatureExtractor, load_extractor


def domain_net(datamodule, weights_path: str | None = None) -> str:
    """The name of the data's own feature net, as its data module declares it (``feature_net``, which names
    ``ganlab/assets/feature_net_<name>.pt``); data that declares none takes a net of the user's, named after
    its ``weights_path``. ``ValueError`` when there is neither."""
    if datamodule.feature_net is not None:
        return datamodule.feature_net
    if weights_path is not None:
        return Path(weights_path).stem
    shipped = sorted(p.stem.removeprefix("feature_net_") for p in ASSETS.glob("feature_net_*.pt"))
    raise ValueError(
        f"features='domain' (metrics=domain) needs the data's own feature net, but data "
        f"{type(datamodule).__name__} declares none (its feature_net is None). Valid: data that declares one "
        f"(shipped in ganlab/assets: {', '.join(shipped) or 'none'}), a net of your own as "
        "weights_path=<feature_net_*.pt beside its .json>, features='inception' (metrics=inception), or "
        "metrics=none."
    )


class FeatureMetric(Metric):
    """Base class: ``update(fake)`` takes generated images in [-1, 1]; subclasses accumulate their features.

    Args:
        features: the feature network.
        datamodule: a ganlab data module; its training samples are the reference set.
        n_real: real samples whose statistics are used (all of them when the dataset is smaller);
            KID and PRDC use the features of the first ``min(n_real, cache.MAX_FEATURES)``.
        real_seed: seed of ``datamodule.real_sample``'s selection.
        cache_dir: directory of the statistics cache (``None``: ``$GANLAB_CACHE``, else
            ``~/.cache/ganlab/stats``).
        batch_size: real images per forward pass when the statistics are computed.

    The real statistics are loaded (or computed, on the metric's device) at the first ``compute``;
    ``cache_hit`` then tells whether they came from the cache.
    """

    full_state_update = False
    paper = ""
    uses_feature_subset = False  # True when compute reads the cached feature vectors, not mean/cov

    def __init__(
        self,
        features: FeatureExtractor,
        datamodule,
        n_real: int = 50_000,
        real_seed: int = 0,
        cache_dir: str | None = None,
        batch_size: int = 250,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if int(n_real) < 2 or int(batch_size) < 1:
            raise ValueError(f"n_real must be >= 2 and batch_size >= 1, got {n_real} and {batch_size}")
        self.features = features
        self.datamodule = datamodule
        self.n_real, self.real_seed, self.batch_size = int(n_real), int(real_seed), int(batch_size)
        self.cache_dir = cache_dir
        self.cache_hit: bool | None = None
        self._real: RealStats | None = None
        self.add_state("n_fake", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    @classmethod
    def from_datamodule(
        cls, datamodule, features: str = "inception", weights_path: str | None = None, **kwargs
    ) -> FeatureMetric:
        """Factory for the evaluation callback; ``features`` is ``"inception"`` (weights at ``weights_path``,
        default torch hub's cache) or ``"domain"`` (the classifier trained on this dataset, the one its data
        module declares (:func:`domain_net`), default in ``ganlab/assets``)."""
        dataset = domain_net(datamodule, weights_path) if features == "domain" else ""
        return cls(load_extractor(features, dataset, weights_path), datamodule, **kwargs)

    def fake_features(self, fake: Tensor) -> Tensor:
        """Float64 features of a batch of generated images; counts them."""
        self.n_fake += fake.shape[0]
        return self.features.extract(fake).double()

    def real_stats(self) -> RealStats:
        """The real-data statistics on the metric's device, from the cache or computed once."""
        if self._real is None:
            self._real, self.cache_hit = real_statistics(
                self.datamodule, self.features, self.n_real, self.real_seed, self.cache_dir, self.batch_size
            )
        if self._real.mean.device != self.device:
            self._real = self._real.to(self.device)
        return self._real

    def protocol(self) -> dict[str, Any]:
        """How the last number was obtained, for ``summary.json`` beside it."""
        self.datamodule.setup("fit")
        n_real = min(self.n_real, len(self.datamodule.train_set))
        return {
            "paper": self.paper,
            "features": self.features.name,
            "features_sha256": self.features.fingerprint(),
            "dataset": type(self.datamodule).__name__,
            "split": split_of(self.datamodule),
            "n_real": min(n_real, cache.MAX_FEATURES) if self.uses_feature_subset else n_real,
            "real_seed": self.real_seed,
            "n_fake": int(self.n_fake),
        }
