"""A Hydra sweeper that maps the trials of an Optuna study (Optuna >= 4, ask/tell) to jobs of any launcher.

Optuna searches; this only launches: it asks ``n_jobs`` trials, launches them as one batch, and tells each
its result. Each trial runs in the run folder ``<sweep dir>/<trial number>`` with the overrides

- the trial's parameters (``optim.g.lr=0.0013``), and the command's plain overrides;
- ``+callbacks.pruning.*``: :class:`ganlab.callbacks.pruning.TrialPruning` with the trial's identity
  (``study``, ``storage``, ``trial``: its number), which reports each evaluation of ``optimized_metric``
  to the trial and stops the run when the study's pruner says so.

The study lives in an RDB (a sqlite file in the sweep folder unless ``storage`` names one), so the same
command run again continues it: new trials get new numbers, hence new run folders (a trial never continues
another's checkpoint: hydra#1407), and trials an earlier session left running are rerun in their own
folders, continuing their own checkpoints. Everything the command asks for (direction, search space,
sampler, pruner, storage) is checked before the first write; a bad value exits 2.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

# the job's pruning callback (ganlab.callbacks.pruning), from the run's own config; the trial's identity is
# added per job. Plain keys, not one dict: a report of the sweep (ganlab.compare) sees one swept key for
# them, callbacks.pruning.trial
PRUNING = (
    "+callbacks.pruning._target_=ganlab.callbacks.pruning.TrialPruning",
    "+callbacks.pruning.pruner=${hydra:sweeper.pruner}",
    "+callbacks.pruning.metric=${optimized_metric}",
    "+callbacks.pruning.every=${callbacks.evaluation.every}",
)


class OptunaSweeper(Sweeper):
    """``hydra/sweeper=ganlab_optuna``; the arguments are documented in :mod:`.config`."""

    def __init__(
        self,
        direction: str,
        study_name: str,
        storage: str | None,
        n_trials: int,
        n_jobs: int,
        sampler: Any,
        pruner: Any,
        params: dict[str, str] | None = None,
    ) -> None:
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs = int(n_trials), int(n_jobs)
        self.sampler_node, self.pruner_node = sampler, pruner
        self.params = dict(params or {})

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def _overrides(self, trial: Any, fixed: list[str], url: str) -> list[str]:
        params = [f"{key}={value}" for key, value in trial.params.items()]
        return [
            *fixed,
            *params,
            f"hydra.sweep.subdir={trial.number}",
            *PRUNING,
            f"+callbacks.pruning.study={self.study_name}",
            f"+callbacks.pruning.storage='{url}'",
            f"+callbacks.pruning.trial={trial.number}",
        ]

    def _check(self, arguments: list[str]) -> tuple[dict[str, Any], list[str], Any]:
        """The search space, the plain overrides and the pruner, with the sampler, all checked (exit 2)."""
        import optuna
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from . import _space, _study

        _study.check_direction(self.direction)
        if self.n_trials < 1 or self.n_jobs < 1:
            _study.reject(
                f"hydra.sweeper.n_trials={self.n_trials}, hydra.sweeper.n_jobs={self.n_jobs}. Valid: both "
                ">= 1."
            )
        lines = [f"{key}={value}" for key, value in self.params.items()] + list(arguments)
        try:
            space, fixed = _space.parse(lines, OverridesParser.create(self.hydra_context.config_loader))
        except Exception as exc:
            _study.reject(f"the search space {lines} cannot be read: {exc}. Valid: {_space.SYNTAX}.")
        if not space:
            _study.reject(f"no parameter to search in {lines}. Valid: {_space.SYNTAX}.")
        examples = {key: f"{key}={_space.example(dist)}" for key, dist in space.items()}
        _study.check_keys(examples, fixed, self.hydra_context.config_loader, self.config)
        sampler = _study.build(
            self.sampler_node, "hydra.sweeper.sampler", optuna.samplers, optuna.samplers.BaseSampler
        )
        if isinstance(sampler, optuna.samplers.GridSampler | optuna.samplers.BruteForceSampler):
            _study.reject(  # they call study.stop() once exhausted, which only study.optimize allows
                f"hydra.sweeper.sampler={type(sampler).__name__} stops the study from inside, which the "
                "ask/tell sweeper does not support. Valid: tpe, random (hydra/sweeper/sampler=...), or "
                "another sampler of optuna.samplers."
            )
        pruner = _study.build(
            self.pruner_node, "hydra.sweeper.pruner", optuna.pruners, optuna.pruners.BasePruner
        )
        return space, fixed, pruner

    def sweep(self, arguments: list[str]) -> list[Any]:
        import optuna

        from ganlab.callbacks.pruning import trial_by_number

        from . import _study

        space, fixed, pruner = self._check(arguments)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        url = _study.storage_url(self.storage, sweep_dir)
        if not self.storage:  # the default database is a file in the sweep folder
            sweep_dir.mkdir(parents=True, exist_ok=True)
        storage = _study.open_storage(url)  # a shared one is checked before the sweep folder exists
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        study = _study.open_study(self.study_name, storage, self.direction, pruner)
        study.sampler = _study.build(
            _study.seeded(self.sampler_node, len(study.trials)),
            "hydra.sweeper.sampler",
            optuna.samplers,
            optuna.samplers.BaseSampler,
        )
        returns = []
        stale = [trial_by_number(study, storage, t.number)[0] for t in _study.orphans(study, sweep_dir)]
        if stale:
            log.info(
                "rerunning %d trial(s) left running by an earlier session: %s",
                len(stale),
                [t.number for t in stale],
            )
            returns.append(self._run(study, stale, fixed, url, sweep_dir))
        asked = 0
        while asked < self.n_trials:
            batch = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - asked))]
            asked += len(batch)
            returns.append(self._run(study, batch, fixed, url, sweep_dir))
        _study.write_results(study, sweep_dir, url)
        return returns

    def _run(self, study: Any, trials: list[Any], fixed: list[str], url: str, sweep_dir: Path) -> list[Any]:
        """Launch one job per trial (``optuna.trial.Trial``), at once, and tell each trial its outcome."""
        from . import _study

        for trial in trials:
            trial.set_user_attr("run_dir", str((sweep_dir / str(trial.number)).resolve()))
        results = self.launcher.launch(
            [self._overrides(t, fixed, url) for t in trials], initial_job_idx=trials[0].number
        )
        for trial, ret in zip(trials, results, strict=True):
            state, value, reason = _study.outcome(ret, sweep_dir / str(trial.number))
            trial.set_user_attr("outcome", reason)
            study.tell(trial.number, value, state=state, skip_if_finished=True)
            log.info("trial %d: %s%s", trial.number, state.name, "" if value is None else f" {value:.6g}")
        return results
