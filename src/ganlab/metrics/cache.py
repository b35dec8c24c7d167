"""Real-data feature statistics, computed once per (dataset, split, feature network, sample count) and kept
on disk.

An entry describes the ``n`` training samples that ``datamodule.real_sample(n, seed)`` selects (a seeded
random permutation; all samples when there are fewer), pushed through the feature network in batches:

- ``mean`` ``mu = (1/n) sum_i f_i`` and the unbiased ``cov`` ``(sum_i f_i f_i^T - n mu mu^T) / (n - 1)``,
  accumulated in float64 (for FID);
- ``features``: the float32 features of the first ``min(n, MAX_FEATURES)`` selected samples, a uniform
  random subset (for KID and PRDC).

The key of an entry is the sha256 of: the data module's class name, the split, the network's name and
fingerprint (sha256 of its weights), ``n``, the seed, the sha256 of the selected samples' bytes (so that
changed data invalidates it), ``MAX_FEATURES`` and ``FORMAT``. Stale entries are left in place; delete the
directory to reclaim the space. The directory is ``cache_dir`` when given (config), else ``$GANLAB_CACHE``,
else ``~/.cache/ganlab/stats``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganlab.metrics.features import FeatureExtractor

FORMAT = 1
MAX_FEATURES = 10_000  # real feature vectors kept for KID / PRDC (the 10k of Naeem et al. 2020)
DEFAULT_DIR = "~/.cache/ganlab/stats"


@dataclass(frozen=True)
class RealStats:
    """Feature statistics of ``n`` real samples; ``meta`` is what the cache key was made of."""

    mean: Tensor
    cov: Tensor
    features: Tensor
    n: int
    meta: dict[str, Any]

    def to(self, device: torch.device | str) -> RealStats:
        return replace(
            self, mean=self.mean.to(device), cov=self.cov.to(device), features=self.features.to(device)
        )


def cache_directory(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$GANLAB_CACHE``, else ``~/.cache/ganlab/stats``."""
    return Path(cache_dir or os.environ.get("GANLAB_CACHE") or DEFAULT_DIR).expanduser()


def split_of(datamodule) -> str:
    """``"test"`` for an image data module built with ``train=False``, else ``"train"``."""
    return "train" if getattr(datamodule, "train", True) else "test"


def selection(datamodule, n: int, seed: int = 0) -> Tensor:
    """Indices of the samples ``datamodule.real_sample(n, seed)`` returns, in the same order."""
    datamodule.setup("fit")
    return torch.randperm(len(datamodule.train_set), generator=torch.Generator().manual_seed(seed))[:n]


def samples_sha256(x: Tensor, index: Tensor, batch_size: int = 4096) -> str:
    """sha256 of the dtype, shape and bytes of ``x[index]``, read in batches."""
    digest = hashlib.sha256(f"{x.dtype}:{(len(index), *x.shape[1:])};".encode())
    for start in range(0, len(index), batch_size):
        chunk = x[index[start : start + batch_size]].cpu()  # in_memory data may lie on the GPU
        digest.update(chunk.contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def real_statistics(
    datamodule,
    extractor: FeatureExtractor,
    n: int,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    batch_size: int = 250,
) -> tuple[RealStats, bool]:
    """The statistics of ``n`` real training samples under ``extractor`` and whether they came from the cache.

    On a miss the features are computed on the extractor's device, in batches of ``batch_size``.
    """
    index = selection(datamodule, n, seed)
    meta = {
        "format": FORMAT,
        "dataset": type(datamodule).__name__,
        "split": split_of(datamodule),
        "features": extractor.name,
        "fingerprint": extractor.fingerprint(),
        "n": len(index),
        "seed": int(seed),
        "max_features": MAX_FEATURES,
        "data_sha256": samples_sha256(datamodule.train_set.x, index),
    }
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
    path = cache_directory(cache_dir) / (
        f"{meta['dataset'].lower()}-{meta['split']}-{extractor.name}-n{meta['n']}-{key[:16]}.pt"
    )
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored["meta"] == meta:
                return RealStats(**stored), True
        except Exception as exc:  # a foreign or damaged file: recompute and overwrite it
            warnings.warn(f"ignoring unreadable statistics cache {str(path)!r}: {exc}", stacklevel=2)
    stats = compute_statistics(datamodule, extractor, index, batch_size, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(
        {"mean": stats.mean, "cov": stats.cov, "features": stats.features, "n": stats.n, "meta": meta},
        partial,
    )
    os.replace(partial, path)
    return stats, False


@torch.no_grad()
def compute_statistics(
    datamodule, extractor: FeatureExtractor, index: Tensor, batch_size: int, meta: dict[str, Any]
) -> RealStats:
    """Mean, covariance and the first ``MAX_FEATURES`` feature vectors of the samples ``index``."""
    if len(index) < 2:
        raise ValueError(f"real-data statistics need at least 2 samples, got {len(index)}")
    device = next(extractor.parameters()).device
    total = outer = None
    kept: list[Tensor] = []
    for start in range(0, len(index), batch_size):
        images = datamodule.train_set[index[start : start + batch_size]][0].to(device)
        features = extractor(images)
        f64 = features.double()
        total = f64.sum(0) if total is None else total + f64.sum(0)
        outer = f64.T @ f64 if outer is None else outer + f64.T @ f64
        kept.append(features[: max(MAX_FEATURES - start, 0)].float().cpu())
    n = len(index)
    mean = total / n
    cov = (outer - n * torch.outer(mean, mean)) / (n - 1)
    return RealStats(mean=mean.cpu(), cov=cov.cpu(), features=torch.cat(kept), n=n, meta=meta)
