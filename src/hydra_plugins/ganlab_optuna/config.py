"""The sweeper's config node, ``hydra/sweeper=ganlab_optuna`` (registered when Hydra scans its plugins).
Kept free of heavy imports: Hydra imports every plugin module at start-up. No ``from __future__ import
annotations``: Hydra's scan executes the module outside ``sys.modules``, where dataclasses cannot resolve
string annotations."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class OptunaSweeperConf:
    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}, {"pruner": "median"}])
    _target_: str = "hydra_plugins.ganlab_optuna.sweeper.OptunaSweeper"
    _recursive_: bool = False  # the sampler and pruner nodes are built by the sweeper, after checking them
    # maximize or minimize the value the job returns (the summary metric named by optimized_metric)
    direction: str = "maximize"
    # the study's name in the storage: rerunning a command with the same name and storage resumes the study
    study_name: str = "ganlab"
    # an Optuna RDB URL (sqlite:///PATH, postgresql://USER@HOST/DB, ...); null: <sweep dir>/optuna.db (sqlite)
    storage: Any = None
    # trials this command runs (a rerun adds as many more to the study)
    n_trials: int = 20
    # trials asked and launched at once, as one batch of the launcher (hydra/launcher=parallel runs them
    # side by side); each is told its result when the batch ends
    n_jobs: int = 1
    # an Optuna sampler and pruner, built with hydra.utils.instantiate: the options of hydra/sweeper/sampler
    # and hydra/sweeper/pruner (conf/hydra/sweeper/), or a _target_ node of your own. A sampler's seed is
    # combined with the number of trials already in the study, so a resumed study continues its proposals
    sampler: Any = None
    pruner: Any = None
    # the search space: config key -> Hydra sweep syntax, e.g. tag(log, interval(1e-4, 1e-2)), choice(a, b),
    # range(1, 9); a sweep override on the command line adds to it
    params: dict[str, str] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="ganlab_optuna", node=OptunaSweeperConf, provider="ganlab"
)
