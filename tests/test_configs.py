"""Every option of every config group composes with the others where the combination makes sense, and
trains a few steps at tiny width. Options are discovered from conf/, so a new YAML file is tested the
moment it exists."""

from __future__ import annotations

import pytest
from fakedata import make_cifar10, make_mnist

from ganlab.train import CONF_DIR, train

VECTOR_DATA = {"ring8", "grid25"}
MODEL_FOR = {"vector": "mlp", "image": "dcgan"}
FILE_DATA = {"mnist": make_mnist, "cifar10": make_cifar10}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def data_overrides(data: str, tmp_path) -> list[str]:
    overrides = [f"data={data}", f"model={MODEL_FOR['vector' if data in VECTOR_DATA else 'image']}"]
    if data in FILE_DATA:
        FILE_DATA[data](tmp_path / "data", n_per_batch=8) if data == "cifar10" else FILE_DATA[data](
            tmp_path / "data", n=40
        )
        overrides.append(f"data.root={tmp_path / 'data'}")
    return overrides


def test_every_group_has_options():
    for group in ("loss", "penalty", "model", "data", "optim", "trainer", "logger"):
        assert options(group), group


@pytest.mark.parametrize("loss", options("loss"))
@pytest.mark.parametrize("data", options("data"))
def test_every_loss_trains_on_every_dataset(make_cfg, tmp_path, loss, data):
    overrides = data_overrides(data, tmp_path) + [f"loss={loss}", "trainer.max_steps=2"]
    if data not in VECTOR_DATA:  # a penalised critic must not use batch norm (Gulrajani et al. 2017)
        overrides.append("model.discriminator.norm=layer")
    summary = train(make_cfg(*overrides))
    assert summary["status"] == "completed", summary["error"]
    assert summary["g_steps"] == 2


@pytest.mark.parametrize("group", ["penalty", "optim", "logger"])
def test_every_option_of_the_other_groups_trains(make_cfg, tmp_path, group):
    for option in options(group):
        summary = train(make_cfg(f"{group}={option}", "trainer.max_steps=2", run_dir=tmp_path / option))
        assert summary["status"] == "completed", (option, summary["error"])


@pytest.mark.parametrize("trainer", [t for t in options("trainer") if t != "gpu"])
def test_cpu_trainer_options_train(make_cfg, trainer):
    assert train(make_cfg(f"trainer={trainer}", "trainer.max_steps=1"))["status"] == "completed"


def test_gpu_trainer_option_composes(make_cfg):
    assert make_cfg("trainer=gpu").trainer.accelerator == "gpu"


def test_wgan_gp_brings_penalty_n_critic_and_optimizer_of_the_paper(make_cfg):
    cfg = make_cfg("loss=wgan_gp")
    assert cfg.loss._target_ == "ganlab.losses.WassersteinLoss"
    assert cfg.n_critic == 5
    assert cfg.penalty.gp.weight == 10.0 and cfg.penalty.gp.center == 1.0
    for net in ("g", "d"):
        assert cfg.optim[net].lr == 1e-4 and list(cfg.optim[net].betas) == [0.0, 0.9]


def test_command_line_wins_over_what_a_loss_brings(make_cfg):
    cfg = make_cfg("loss=wgan_gp", "n_critic=2", "optim=adam", "penalty=none", "penalty.gp.weight=5", tiny=False) \
        if False else make_cfg("loss=wgan_gp", "n_critic=2", "optim=adam", "penalty=none")
    assert cfg.n_critic == 2 and cfg.optim.g.lr == 2e-4 and dict(cfg.penalty) == {}


def test_ttur_sets_learning_rates_per_network(make_cfg):
    cfg = make_cfg("optim=ttur")
    assert cfg.optim.d.lr == 4 * cfg.optim.g.lr
    assert make_cfg("optim.d.lr=1e-3").optim.g.lr == 2e-4
