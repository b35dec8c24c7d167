"""ganlab as a dependency: the wheel and the sdist built from the repository hold the configs (conf/ is
shipped as ganlab/conf), the assets and every subpackage, and ``python -m ganlab.train`` from the installed
wheel trains from a folder that holds no conf/. Where ganlab.paths looks for the configs in each layout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ganlab.paths import find_conf_dir

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "README.md", "src", "conf")  # what setuptools reads to build ganlab
TINY_CLI = [
    "logger=none",
    "trainer.max_steps=3",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "model.generator.width=8",
    "model.discriminator.width=8",
    "data.n_train=64",
    "data.batch_size=8",
    "sample_every=0",
    "callbacks.evaluation.n_samples=100",
]


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def pip(*args: str | Path, cwd: Path) -> None:
    """Offline pip of the test's interpreter: the build uses the setuptools installed beside it."""
    run(sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "--no-build-isolation", "-q", cwd=cwd)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of what the build reads: pip builds in the source folder and leaves build/ and *.egg-info
    there (a stale build/lib would leak deleted modules into later wheels)."""
    copy = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, copy / name)
    return copy


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    pip("wheel", source, "-w", out, cwd=out)
    (built,) = out.glob("ganlab-*.whl")
    return built


def wheel_names(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as zf:
        return {n for n in zf.namelist() if ".dist-info/" not in n}


def test_wheel_holds_every_config_asset_and_subpackage(wheel):
    names = wheel_names(wheel)
    configs = {
        f"ganlab/conf/{p.relative_to(ROOT / 'conf').as_posix()}" for p in (ROOT / "conf").rglob("*.yaml")
    }
    assert "ganlab/conf/train.yaml" in configs and "ganlab/conf/hydra/launcher/slurm.yaml" in configs
    assert {n for n in names if n.startswith("ganlab/conf/")} == configs
    assets = {f"ganlab/assets/{p.name}" for p in (ROOT / "src/ganlab/assets").iterdir()}
    assert {"ganlab/assets/feature_net_digits.pt", "ganlab/assets/feature_net_digits.json"} <= assets <= names
    modules = {p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src").rglob("*.py")}
    assert {n for n in names if n.endswith(".py")} == modules  # pyproject.toml's packages list is complete


def test_sdist_holds_conf_and_builds_the_same_wheel(source, wheel, tmp_path):
    run(
        sys.executable,
        "-c",
        f"from setuptools.build_meta import build_sdist; build_sdist({str(tmp_path)!r})",
        cwd=source,
    )
    (sdist,) = tmp_path.glob("ganlab-*.tar.gz")
    pip("wheel", sdist, "-w", tmp_path / "wheel", cwd=tmp_path)
    (from_sdist,) = (tmp_path / "wheel").glob("ganlab-*.whl")
    assert wheel_names(from_sdist) == wheel_names(wheel)


def test_installed_wheel_trains_from_a_folder_without_conf(wheel, tmp_path):
    site, elsewhere, user_conf = tmp_path / "site", tmp_path / "elsewhere", tmp_path / "my_conf"
    pip("install", "--target", site, wheel, cwd=tmp_path)
    elsewhere.mkdir()
    (user_conf / "loss").mkdir(parents=True)  # a user's own config group option, found via hydra.searchpath
    (user_conf / "loss" / "my_hinge.yaml").write_text("_target_: ganlab.losses.HingeLoss\n")
    # -I: no PYTHONPATH, no cwd; the installed wheel goes first on sys.path, before the venv's editable ganlab
    main = (
        "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); import ganlab; "
        "assert ganlab.__file__.startswith(sys.path[0]), ganlab.__file__; "
        "runpy.run_module('ganlab.train', run_name='__main__', alter_sys=True)"
    )
    overrides = [*TINY_CLI, f"hydra.searchpath=[file://{user_conf}]", "loss=my_hinge", "hydra.run.dir=run"]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    run(sys.executable, "-I", "-c", main, site, *overrides, cwd=elsewhere, env=env)
    summary = json.loads((elsewhere / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["g_steps"] == 3
    assert (elsewhere / "run" / "checkpoints" / "last.ckpt").is_file()
    assert not (elsewhere / "conf").exists()


def make_conf(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "train.yaml").write_text("seed: 0\n")
    return folder


def test_shipped_configs_come_before_a_checkouts(tmp_path):
    package = tmp_path / "src" / "ganlab"
    shipped, checkout = make_conf(package / "conf"), make_conf(tmp_path / "conf")
    assert find_conf_dir(package) == shipped
    shutil.rmtree(shipped)
    assert find_conf_dir(package) == checkout


def test_no_configs_is_an_error_naming_both_places(tmp_path):
    package = tmp_path / "site" / "ganlab"
    (package / "conf").mkdir(parents=True)  # a folder without train.yaml is not a config folder
    with pytest.raises(FileNotFoundError) as err:
        find_conf_dir(package)
    assert str(package / "conf") in str(err.value) and str(tmp_path / "conf") in str(err.value)
