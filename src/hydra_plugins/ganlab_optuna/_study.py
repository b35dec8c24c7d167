"""The sweeper's work with Optuna: checking what the command asks for before anything is written, opening
the study, turning a finished job into the trial's state, and the files left in the sweep folder.
Imported when a sweep starts (Hydra does not scan modules named ``_*``)."""

from __future__ import annotations

import difflib
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from hydra.core.utils import JobReturn
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from ganlab.summary import is_alive, read_summary

DIRECTIONS = ("maximize", "minimize")


def reject(message: str) -> None:
    """An invalid sweep: one paragraph on stderr, exit code 2 (ganlab's code for a bad config)."""
    print(f"ganlab: invalid Optuna sweep: {' '.join(message.split())}", file=sys.stderr)  # one paragraph
    raise SystemExit(2)


def _classes(module: Any, base: type) -> list[str]:
    return sorted(
        f"{module.__name__}.{name}"
        for name, obj in vars(module).items()
        if isinstance(obj, type) and issubclass(obj, base) and not name.startswith("Base")
    )


def build(node: Any, key: str, module: Any, base: type) -> Any:
    """The sampler or pruner of ``node`` (``_target_`` and its arguments); :func:`reject` naming the node
    and the classes of ``module`` when it cannot be built or is not a ``base``."""
    try:
        built = instantiate(node)
    except Exception as exc:
        built, problem = None, f"{type(exc.__cause__ or exc).__name__}: {exc.__cause__ or exc}"
    else:
        problem = None if isinstance(built, base) else f"it builds a {type(built).__name__}"
    if problem is not None:
        target = node.get("_target_") if isinstance(node, dict | DictConfig) else node
        reject(
            f"{key} (_target_={target!r}) is not a usable Optuna {base.__name__.removeprefix('Base').lower()}"
            f" ({problem}). Valid _target_ values: {', '.join(_classes(module, base))}, with their arguments."
        )
    return built


def seeded(node: Any, previous_trials: int) -> Any:
    """The sampler node with its ``seed`` (when it has one) combined with the number of trials the study
    already holds: a resumed study draws new proposals rather than the first session's again, and the same
    command on the same study state still draws the same ones."""
    node = OmegaConf.create(OmegaConf.to_container(node) if isinstance(node, DictConfig) else dict(node))
    if node.get("seed") is not None:
        node.seed = int(np.random.SeedSequence([int(node.seed), previous_trials]).generate_state(1)[0])
    return node


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        reject(f"hydra.sweeper.direction={direction!r} is not a direction. Valid: {', '.join(DIRECTIONS)}.")


def _composes(loader: Any, config: DictConfig, overrides: list[str]) -> bool:
    try:
        loader.load_sweep_config(master_config=config, sweep_overrides=overrides)
    except Exception:
        return False
    return True


def check_keys(examples: dict[str, str], fixed: list[str], loader: Any, config: DictConfig) -> None:
    """Compose a trial's config (every parameter at an example value, ``examples``: key -> override) as the
    launcher will, so that a parameter that is not a config key or group is refused before the first
    trial, naming it and the config's keys closest to it."""
    if _composes(loader, config, [*fixed, *examples.values()]):
        return
    bad = [key for key, line in examples.items() if not _composes(loader, config, [*fixed, line])]
    known = _keys(OmegaConf.to_container(config, resolve=False))
    close = sorted({c for key in bad for c in difflib.get_close_matches(key.lstrip("+"), known, n=3)})
    nearby = f"; close keys: {', '.join(close)}" if close else ""
    reject(
        f"the search space names {', '.join(bad) or 'keys'} that the run's config does not have (or the "
        "command's other overrides do not compose). Valid: config keys (optim.g.lr, data.batch_size, ...), "
        f"config groups (loss, penalty, ...) or +key for a new key{nearby}."
    )


def _keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix[:-1]]
    out: list[str] = []
    for key, value in node.items():
        if key != "hydra":
            out += _keys(value, f"{prefix}{key}.")
    return out


def storage_url(storage: str | None, sweep_dir: Path) -> str:
    """The study's RDB URL: ``storage``, or a sqlite file in the sweep folder (``optuna.db``)."""
    return storage if storage else f"sqlite:///{(sweep_dir / 'optuna.db').resolve()}"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """The RDB storage at ``url`` (connected, its tables created); :func:`reject` when it cannot be."""
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:
        reject(
            f"hydra.sweeper.storage={url!r} cannot be opened ({type(exc).__name__}: {exc}). Valid: a "
            "reachable database URL (sqlite:///PATH in an existing folder, postgresql://USER@HOST/DB, "
            "mysql://...), or null for a sqlite file in the sweep folder."
        )


def open_study(name: str, storage: Any, direction: str, pruner: Any) -> optuna.Study:
    try:
        return optuna.create_study(
            study_name=name, storage=storage, direction=direction, pruner=pruner, load_if_exists=True
        )
    except ValueError as exc:  # an existing study of the same name with another direction
        reject(
            f"hydra.sweeper.study_name={name!r}: {exc}. Valid: the study's own direction, or another name."
        )


def orphans(study: optuna.Study, sweep_dir: Path) -> list[FrozenTrial]:
    """Trials of this sweep folder left ``RUNNING`` by an earlier session that stopped (preempted, killed)
    and whose run is not alive: they are run again in their own folders, continuing their checkpoints."""
    found = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        folder = trial.user_attrs.get("run_dir")
        if folder is None or Path(folder).parent != sweep_dir.resolve():
            continue
        try:
            alive = is_alive(read_summary(folder))
        except (OSError, ValueError):
            alive = False
        if not alive:
            found.append(trial)
    return found


def outcome(ret: JobReturn, run_dir: Path) -> tuple[TrialState, float | None, str]:
    """The trial's state, value and reason, from the job's return and its run's ``summary.json``: a run that
    completed with a finite value is ``COMPLETE``; a pruned one ``PRUNED``; anything else (failed, diverged,
    no summary, a NaN or missing value) ``FAIL``, never a score."""
    try:
        status = read_summary(run_dir).get("status")
    except (OSError, ValueError) as exc:
        return TrialState.FAIL, None, f"no readable summary.json in {run_dir}: {exc}"
    try:
        value = ret.return_value  # re-raises the job's exception when it raised one
    except Exception as exc:
        return TrialState.FAIL, None, f"the job raised {type(exc).__name__}: {exc}"
    if status == "pruned":
        return TrialState.PRUNED, None, "pruned"
    if status != "completed":
        return TrialState.FAIL, None, f"run {status}"
    if not isinstance(value, int | float) or not math.isfinite(value):
        return TrialState.FAIL, None, f"the run returned {value!r} for optimized_metric (not a finite number)"
    return TrialState.COMPLETE, float(value), "completed"


def write_results(study: optuna.Study, sweep_dir: Path, url: str) -> None:
    """``optuna_best.yaml`` (the best trial, its value, parameters and run folder, and the trials' states),
    ``optuna_history.png`` and ``optuna_importance.png`` (parameter importances, fANOVA; skipped with a note
    in optuna_best.yaml when fewer than 2 trials completed)."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    counts = {state.name.lower(): 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] += 1
    best = study.best_trial if complete else None  # Optuna's, in the study's direction
    result: dict[str, Any] = {
        "study_name": study.study_name,
        "storage": url,
        "direction": study.direction.name.lower(),
        "trials": counts,
        "best_trial": None if best is None else best.number,
        "best_value": None if best is None else best.value,
        "best_params": None if best is None else dict(best.params),
        "best_run_dir": None if best is None else best.user_attrs.get("run_dir"),
        "plots": {"history": "optuna_history.png"},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        plots.plot_optimization_history(study).figure.savefig(sweep_dir / "optuna_history.png", dpi=100)
        if len(complete) >= 2:
            plots.plot_param_importances(study).figure.savefig(sweep_dir / "optuna_importance.png", dpi=100)
            result["plots"]["importance"] = "optuna_importance.png"
        else:
            result["plots"]["importance"] = (
                f"skipped: parameter importance needs 2 completed trials, the study has {len(complete)}"
            )
    matplotlib.pyplot.close("all")
    (sweep_dir / "optuna_best.yaml").write_text(yaml.safe_dump(result, sort_keys=False))
