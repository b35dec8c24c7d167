"""Pruning for an Optuna trial: each evaluation of the optimised metric goes to the trial, and the study's
pruner may stop the run early (Optuna's ``trial.report`` / ``trial.should_prune``).

The Optuna sweeper (``hydra/sweeper=ganlab_optuna``) adds this callback to each trial's job
(``+callbacks.pruning.*``, with the trial's study, storage and number); a run started any other way has no
trial and no such callback.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytorch_lightning as pl

log = logging.getLogger("ganlab")


class Pruned(Exception):
    """The study's pruner stopped the trial's run. Its checkpoint is saved; the run's status is ``pruned``
    (a result of the search, not a failure)."""

    def __init__(self, trial: int, g_step: int, metric: str, value: float) -> None:
        super().__init__(
            f"pruned by the Optuna study at generator step {g_step} (trial {trial}, {metric}={value:.6g})"
        )
        self.trial, self.g_step = trial, g_step


def trial_by_number(study: Any, storage: Any, number: int) -> Any:
    """The live ``optuna.trial.Trial`` numbered ``number`` in ``study`` (kept in ``storage``), to report to or
    tell from a process other than the one that asked it, and its state."""
    import optuna

    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    return optuna.trial.Trial(study, trial_id), storage.get_trial(trial_id).state


class TrialPruning(pl.Callback):
    """Every ``every`` generator steps (the evaluation's interval; 0: never), reports ``metric`` (as the
    evaluation callback left it in ``trainer.callback_metrics``) to trial ``trial`` of the study
    ``study`` in ``storage`` at step ``g_steps``, and asks the study's ``pruner`` whether to stop
    (Optuna's pruners compare it with the other trials' values at the same step: ``MedianPruner`` stops a
    trial below the median, ``WilcoxonPruner`` one whose values are significantly worse than the best
    trial's). A non-finite value is not reported (a diverging run stops by itself).

    On a prune the run stops after that step, the checkpoint callback saves it at the end of training, and
    this callback raises :class:`Pruned` from its own ``on_train_end``: listed after the checkpoint (the
    sweeper's ``+callbacks.pruning`` appends it last), so the checkpoint is on disk first. On several
    processes rank 0 talks to the study and broadcasts the decision."""

    def __init__(self, study: str, trial: int, storage: str, pruner: Any, metric: str, every: int) -> None:
        self.study_name, self.number, self.url, self.pruner = study, int(trial), storage, pruner
        self.metric, self.every = metric, int(every)
        self.trial: Any = None
        self.pruned: Pruned | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.every:
            return
        import optuna

        storage = optuna.storages.RDBStorage(self.url)
        study = optuna.load_study(study_name=self.study_name, storage=storage, pruner=self.pruner)
        trial, state = trial_by_number(study, storage, self.number)
        if state.is_finished():
            log.warning("Optuna trial %d is already finished: its evaluations are not reported", self.number)
            return
        self.trial = trial

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self.every or pl_module.g_steps % self.every:
            return
        value = float(trainer.callback_metrics.get(self.metric, math.nan))
        prune = False
        if self.trial is not None and math.isfinite(value):
            self.trial.report(value, pl_module.g_steps)
            prune = self.trial.should_prune()
        if trainer.world_size > 1:
            prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            self.pruned = Pruned(self.number, pl_module.g_steps, self.metric, value)
            log.info("%s", self.pruned)
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        if self.pruned is not None:
            raise self.pruned
