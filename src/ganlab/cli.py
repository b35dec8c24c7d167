"""The command line of ``python -m ganlab.train`` (``ganlab-train``): the Hydra app, its exit code, the
outcome of a multirun, and hints for mistyped keys.

Exit codes: 0 when every run completed or diverged (divergence is a result of the experiment, recorded
in summary.json); 1 when a run failed with an exception (a multirun runs all its jobs first, then exits
1 and lists the failed run folders); 2 for an invalid config of a single run (one paragraph on stderr,
no run folder left behind); 128 + signal number when a run was interrupted (143 for SIGTERM, 138 for
SIGUSR1, 130 for Ctrl-C): the checkpoint is saved and a multirun stops, so that rerunning the same
command resumes it (``resume=auto``).
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

from ganlab.config import ConfigError, renamed_option_hints, validate
from ganlab.paths import CONF_DIR
from ganlab.resolvers import in_multirun, task_overrides
from ganlab.run_folder import reject
from ganlab.summary import read_summary

FAILED_RUNS: list[Path] = []  # run folders of this process's multirun jobs that failed (exit code 1)

# Warnings of dependencies that say nothing about the run; they stay in train.log but not on the console
# (the ``known_harmless`` filter of hydra.job_logging in conf/train.yaml). Message fragment -> why.
KNOWN_HARMLESS_WARNINGS = {
    "`isinstance(treespec, LeafSpec)` is deprecated": "Lightning's own use of a torch API that torch "
    "deprecated (pytorch_lightning/utilities/_pytree.py); nothing in a run's config can change it",
}


class KnownHarmlessWarnings(logging.Filter):
    """Drops the warnings of :data:`KNOWN_HARMLESS_WARNINGS` from a log handler (the console's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in KNOWN_HARMLESS_WARNINGS)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def job_outcome(run_dir: Path, varying: list[str], metric: str | None) -> dict[str, str]:
    """A multirun job's line, from its summary.json: the overrides that vary across the sweep, the status,
    the key metric (``metric``, else the first one the run's metrics declared) and the wall time."""
    try:
        summary = read_summary(run_dir)
    except (OSError, ValueError):
        summary = {"status": "no summary.json"}
    values = summary.get("metrics") or {}
    key = metric or next(iter(summary.get("metrics_meta") or {}), None)
    return {
        "overrides": " ".join(varying) or "(none)",
        "status": str(summary.get("status")),
        "metric": f"{key}={_number(values.get(key))}" if key else "-",
        "wall": f"{_number(summary.get('wall_s'))} s",
    }


class MultirunOutcome(HydraCallback):
    """Hydra callback (``hydra.callbacks`` in conf/train.yaml), the console of a multirun: a line when
    each job starts and one when it ends (job number, the overrides that vary across the sweep, status,
    key metric, wall time), then a table of all jobs and the list of failed ones, so that :func:`main`
    exits 1. The job lines are printed by the job's own process (Hydra calls ``on_job_start`` and
    ``on_job_end`` there, with the joblib and submitit launchers too; the callback travels to it pickled,
    with the sweep's command line that :meth:`on_multirun_start` recorded). The table reads the summaries,
    so it works with any launcher (jobs in other processes or on other machines included).

    The overrides that vary are the job's overrides that are not on the sweep's command line as they
    are: the swept values (``seed=0,1`` -> ``seed=1``) and those a sweeper chose (Optuna's parameters)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.command_line: list[str] = []

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()
        self.command_line = list(config.hydra.overrides.task)
        FAILED_RUNS.clear()
        print(f"sweep {config.hydra.sweep.dir}: {' '.join(self.command_line)}", flush=True)

    def _varying(self, overrides: list[str]) -> list[str]:
        return [o for o in overrides if o not in self.command_line]

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if in_multirun():
            _say(f"[job {config.hydra.job.num}] started: {' '.join(self._varying(task_overrides()))}")

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        if in_multirun():
            run_dir, metric = Path(config.hydra.runtime.output_dir), config.get("optimized_metric")
            job = job_outcome(run_dir, self._varying(task_overrides()), metric)
            _say(f"[job {config.hydra.job.num}] ended: {'  '.join(job.values())}")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        rows = []
        for path in sorted(sweep.glob("**/summary.json"), key=_job_order):
            folder = path.parent.resolve()
            if path.stat().st_mtime < self.started - 1:  # an earlier multirun's job in the same folder
                continue
            job = job_outcome(folder, self._varying(_overrides(folder)), config.get("optimized_metric"))
            rows.append({"job": str(path.parent.relative_to(sweep)), **job})
            if job["status"] == "failed" and folder not in FAILED_RUNS:
                FAILED_RUNS.append(folder)
        print(f"\nsweep {sweep}: {len(rows)} job(s)\n{_table(rows)}", flush=True)
        if FAILED_RUNS:
            folders = ", ".join(str(p) for p in FAILED_RUNS)
            print(
                f"ganlab: {len(FAILED_RUNS)} job(s) of the sweep failed (see the errors above): {folders}",
                file=sys.stderr,
            )


def _say(line: str) -> None:
    """One console line in one write: jobs of a parallel launcher share the console, and ``print`` on an
    unbuffered stream writes the text and its newline separately, so that another job's line could land
    between them."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _job_order(path: Path) -> tuple[int, str]:
    """Jobs in the order of their number (folder ``2`` before ``10``)."""
    name = path.parent.name
    return (int(name), "") if name.isdigit() else (sys.maxsize, str(path))


def _overrides(run_dir: Path) -> list[str]:
    try:
        return list(read_summary(run_dir).get("overrides") or [])
    except (OSError, ValueError):
        return []


def _table(rows: list[dict[str, str]]) -> str:
    """``rows`` as a table of aligned text columns under a header."""
    header = {
        "job": "job",
        "overrides": "overrides",
        "status": "status",
        "metric": "key metric",
        "wall": "wall",
    }
    lines = [header, *rows]
    widths = {key: max(len(line[key]) for line in lines) for key in header}
    return "\n".join("  ".join(line[key].ljust(widths[key]) for key in header).rstrip() for line in lines)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _app(cfg: DictConfig) -> float | None:
    try:
        summary = _run(cfg, task_overrides())
    except ConfigError as exc:
        print(f"ganlab: invalid config: {exc}", file=sys.stderr)
        sys.exit(2)
    if summary["status"] == "failed":  # a multirun job (a single run raised): the sweep exits 1
        FAILED_RUNS.append(Path(cfg.paths.output_dir).resolve())
    metric = cfg.get("optimized_metric")
    if not metric:
        return None
    value = summary["metrics"].get(metric)
    return float("nan") if value is None else value  # a sweeper records NaN as a failed trial


def _run(cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """The run's summary: :func:`ganlab.train.train`, after the static checks of the config, which run
    before the training code (torch, Lightning) is imported, so that a wrong value answers at once; an
    invalid config is rejected as ``train`` rejects it (:func:`ganlab.run_folder.reject`)."""
    try:
        validate(cfg)
    except ConfigError as exc:
        return reject(cfg, Path(cfg.paths.output_dir), overrides, exc)
    logging.captureWarnings(True)  # warnings become log records: all in train.log (conf/train.yaml)
    from ganlab.train import train

    return train(cfg, overrides)


# hints for mistyped keys -------------------------------------------------------------------------------
def _config_groups() -> set[str]:
    return {p.name for p in CONF_DIR.iterdir() if p.is_dir()}


def _known_top_level_keys() -> set[str]:
    keys = set(OmegaConf.load(CONF_DIR / "train.yaml").keys()) - {"defaults"}
    return keys | _config_groups() | {"hydra"}


def _unknown_key_hint(arg: str, name: str, known: Any, where: str, kind: str = "key") -> str:
    close = difflib.get_close_matches(name, list(known), n=3)
    return (
        f"ganlab: unknown {kind} {name!r} in override {arg!r}"
        + (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ".")
        + f" Valid {where}: {', '.join(sorted(str(k) for k in known))}."
    )


def _composed(group_choices: list[str]) -> DictConfig | None:
    """The config the group choices compose to (no other override), or ``None`` when it does not."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose("train", overrides=group_choices)
    except Exception:
        return None
    finally:
        GlobalHydra.instance().clear()


def hint_unknown_keys(args: list[str]) -> list[str]:
    """For each override naming a key that does not exist, a line naming it, the closest valid names and
    all valid ones at that level (Hydra says only 'not in struct'): a top-level key that is neither a
    config group nor a key of conf/train.yaml, or a nested one (``model.generator.widht``) checked against
    the config the command's group choices compose to."""
    known, hints, nested = _known_top_level_keys(), [], []
    overrides = [a for a in args if not a.startswith("-") and "=" in a]
    for arg in overrides:
        key = arg.split("=", 1)[0].split("@", 1)[0]
        top = key.lstrip("+~").split(".", 1)[0].split("/", 1)[0]
        if top and top not in known:
            hints.append(_unknown_key_hint(arg, top, known, "top-level keys and groups"))
        elif "." in key and not key.startswith(("+", "~", "hydra.")):
            nested.append((arg, key.split(".")))
    choices = [a for a in overrides if a.split("=", 1)[0] in _config_groups()]
    cfg = _composed(choices) if nested else None
    if cfg is None:  # no nested key, or the group choices themselves are wrong (Hydra says which)
        return hints
    tree = OmegaConf.to_container(cfg, resolve=False)
    for arg, parts in nested:
        node: Any = tree
        for depth, part in enumerate(parts):
            if not isinstance(node, dict):  # below a value: Hydra's own message says it
                break
            if part not in node:
                hints.append(_unknown_key_hint(arg, part, node.keys(), f"keys of {'.'.join(parts[:depth])}"))
                break
            node = node[part]
    return hints


def _group_options(group: str) -> list[str]:
    """The options of a config group as Hydra sees them (conf/ files and plugins' registered configs)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return sorted(GlobalHydra.instance().config_loader().get_group_options(group))
    finally:
        GlobalHydra.instance().clear()


def _missing_plugin(group: str, option: str) -> str | None:
    """The module of a ganlab config's ``_target_`` (``conf/<group>/<option>.yaml``) when it cannot be
    imported (a plugin behind an extra, such as hydra-ray-launcher), else ``None``."""
    path = CONF_DIR / group / f"{option}.yaml"
    target = OmegaConf.load(path).get("_target_") if path.is_file() else None
    if not target:
        return None
    module = str(target).rsplit(".", 1)[0]
    try:
        return None if importlib.util.find_spec(module) else module
    except ImportError:
        return module


def hint_unknown_options(args: list[str]) -> list[str]:
    """For each option of a Hydra group that does not exist (``hydra/launcher=gpu``), a line naming it,
    the closest options and every valid one; for one whose plugin is not installed
    (``hydra/launcher=ray``), a line naming the plugin and the config that says how to install it."""
    hints = []
    for arg in (a for a in args if "/" in a.split("=", 1)[0] and "=" in a):
        group, value = arg.lstrip("+~").split("=", 1)
        options = _group_options(group)
        for name in (v for v in value.strip("[]").split(",") if options and v):
            if name not in options:
                hints.append(_unknown_key_hint(arg, name, options, f"options of {group}", kind="option"))
            elif module := _missing_plugin(group, name):
                hints.append(
                    f"ganlab: {group}={name} needs the plugin {module}, which is not installed here; the "
                    f"comments of {CONF_DIR / group / name}.yaml say how to install it."
                )
    return hints


def main() -> int:
    """Console entry point (``python -m ganlab.train``, ``ganlab-train``): runs the Hydra app, adds hints
    to Hydra's error for a renamed option or a mistyped key, and returns the exit code (module docstring)."""
    try:
        _app()
    except SystemExit as exc:
        if exc.code == 1:
            args = sys.argv[1:]
            for hint in [*renamed_option_hints(args), *hint_unknown_keys(args), *hint_unknown_options(args)]:
                print(hint, file=sys.stderr)
        raise
    return 1 if FAILED_RUNS else 0


if __name__ == "__main__":
    sys.exit(main())
