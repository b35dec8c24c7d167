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
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

from ganlab.config import ConfigError, renamed_option_hints, validate
from ganlab.paths import CONF_DIR
from ganlab.resolvers import task_overrides
from ganlab.run_folder import reject
from ganlab.summary import read_summary

FAILED_RUNS: list[Path] = []  # run folders of this process's multirun jobs that failed (exit code 1)


class MultirunOutcome(HydraCallback):
    """Hydra callback (``hydra.callbacks`` in conf/train.yaml): after a multirun, list the jobs whose
    run failed, so that :func:`main` exits 1. It reads the summaries, so it works with any launcher
    (jobs in other processes or on other machines included)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()
        FAILED_RUNS.clear()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        for path in sorted(sweep.glob("**/summary.json")):
            folder = path.parent.resolve()
            if path.stat().st_mtime >= getattr(self, "started", 0) - 1 and folder not in FAILED_RUNS:
                try:
                    failed = read_summary(folder).get("status") == "failed"
                except (OSError, ValueError):
                    continue
                if failed:
                    FAILED_RUNS.append(folder)
        if FAILED_RUNS:
            folders = ", ".join(str(p) for p in FAILED_RUNS)
            print(
                f"ganlab: {len(FAILED_RUNS)} job(s) of the sweep failed (see the errors above): {folders}",
                file=sys.stderr,
            )


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
