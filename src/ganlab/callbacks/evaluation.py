"""Periodic evaluation of generated samples with the metrics the data config declares."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torchmetrics import Metric

from ganlab.config import ConfigError


class Evaluation(pl.Callback):
    """Every ``every`` generator steps (0: only at the end) and at the end of training, draws
    ``n_samples`` samples in batches of ``batch_size`` from fixed noise (seed ``seed``), feeds them to
    each metric and logs the results as ``metrics/<key>`` to every tracker. ``latest`` keeps the last
    values, which it contributes to ``summary.json`` (:meth:`summary_fields`).

    ``metrics`` maps a name to a factory called with ``datamodule=`` (Hydra ``_partial_``), so that a
    metric can read what it needs from the data (mode means, a reference set, ...).

    The noise of the ``n_samples`` samples is one draw from ``seed``, so the samples do not depend on the
    batching. On several processes each generates a contiguous block of the batches (at least one) and the
    metrics' states are gathered across processes when computed (torchmetrics), so that the numbers are
    those of all ``n_samples``, in the same order as on one process.

    A metric may declare what its values mean (``meta()``: direction and range, :mod:`ganlab.metrics.meta`);
    :meth:`declarations` collects them for ``summary.json``.
    """

    def __init__(
        self,
        metrics: dict[str, Callable[..., Metric]],
        every: int = 0,
        n_samples: int = 2500,
        batch_size: int = 500,
        seed: int = 0,
    ) -> None:
        if int(every) < 0 or int(n_samples) < 1 or int(batch_size) < 1:
            raise ValueError(
                f"Evaluation: every must be >= 0, n_samples and batch_size >= 1; got every={every}, "
                f"n_samples={n_samples}, batch_size={batch_size}"
            )
        self.factories = dict(metrics)
        self.every, self.n_samples, self.batch_size, self.seed = (
            int(every),
            int(n_samples),
            int(batch_size),
            int(seed),
        )
        self.metrics: dict[str, Metric] = {}
        self.latest: dict[str, float] = {}

    def protocols(self) -> dict[str, dict[str, Any]]:
        """How each metric was computed (feature net, sample counts, ...), to store beside its numbers."""
        common = {"n_fake": self.n_samples, "fake_seed": self.seed}  # over all processes
        return {
            name: {**(metric.protocol() if hasattr(metric, "protocol") else {}), **common}
            for name, metric in self.metrics.items()
        }

    def summary_fields(self, run_dir: Any) -> dict[str, dict[str, Any]]:
        """Its part of summary.json: ``metrics`` (last values), ``metrics_protocol``, ``metrics_meta``."""
        if not self.metrics:
            return {}
        values = {k: v for k, v in self.latest.items() if k.startswith("metrics/")}
        return {"metrics": values, "metrics_protocol": self.protocols(), "metrics_meta": self.declarations()}

    def declarations(self) -> dict[str, dict[str, Any]]:
        """``summary.json``'s ``metrics_meta``: per reported value ``metrics/<key>``, the direction and range
        its metric declares (:class:`ganlab.metrics.meta.MetricMeta`); a metric without ``meta()``
        declares nothing."""
        return {
            f"metrics/{key}": meta.to_json()
            for metric in self.metrics.values()
            if hasattr(metric, "meta")
            for key, meta in metric.meta().items()
        }

    def build_metrics(self, datamodule) -> dict[str, Metric]:
        """Each metric built for ``datamodule``. A metric that does not fit the data (its factory's
        ``ValueError``: mode metrics on data without modes, domain features on data without a feature net;
        an ``OSError``: weights that are not where the config says)
        is a :class:`ConfigError` naming it."""
        metrics = {}
        for name, make in self.factories.items():
            try:
                metrics[name] = make(datamodule=datamodule)
            except (ValueError, OSError) as exc:  # OSError: missing weights (FID's Inception)
                raise ConfigError(f"callbacks.evaluation.metrics.{name}: {exc}") from exc
        return metrics

    def check_data(self, datamodule) -> None:
        """Fail before anything is written when a metric does not fit the data (ganlab.train.prepare calls
        every callback's ``check_data``)."""
        self.build_metrics(datamodule)

    def on_fit_start(self, trainer: pl.Trainer, pl_module) -> None:
        self.metrics = self.build_metrics(trainer.datamodule)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.every and pl_module.g_steps % self.every == 0:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        if self.metrics and self.latest.get("g_steps") != pl_module.g_steps:
            self.evaluate(trainer, pl_module)

    def evaluate(self, trainer: pl.Trainer, pl_module) -> dict[str, Any]:
        if not self.metrics:
            return {}
        pl_module.check_weights()  # a diverged G is reported as such, not evaluated
        g = torch.Generator().manual_seed(self.seed)
        for metric in self.metrics.values():
            metric.reset()
            metric.to(pl_module.device)
        z = torch.randn(self.n_samples, pl_module.z_dim, generator=g)  # the same whatever the batching
        rank, size = trainer.global_rank, trainer.world_size
        # at least one batch per process (an empty process would have no state to gather)
        batch = min(self.batch_size, -(-self.n_samples // size))
        starts = range(0, self.n_samples, batch)
        for b, start in enumerate(starts):
            if b * size // len(starts) != rank:  # this process's contiguous block of batches
                continue
            fake = pl_module.generate(z[start : start + batch])
            for metric in self.metrics.values():
                metric.update(fake)
        values: dict[str, float] = {}
        for name, metric in self.metrics.items():
            result = metric.compute()
            items = result.items() if isinstance(result, dict) else [(name, result)]
            values.update({f"metrics/{key}": float(v) for key, v in items})
        for logger in trainer.loggers:
            logger.log_metrics({k: v for k, v in values.items() if not math.isnan(v)}, step=pl_module.g_steps)
        # Lightning's channel between callbacks (what early stopping and Optuna's pruning read)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})
        self.latest = {**values, "g_steps": pl_module.g_steps}
        return values
