"""Every option of every config group composes with the others where the combination makes sense, and
trains a few steps at tiny width. Options are discovered from conf/, so a new YAML file is tested the
moment it exists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import get_class

from fakedata import make_cifar10, make_image_folder, make_mnist, make_table
from ganlab.augment import InputTransform
from ganlab.config import ConfigError
from ganlab.losses import AdversarialLoss
from ganlab.paths import CONF_DIR
from ganlab.penalties import Penalty
from ganlab.train import train

VECTOR_DATA = {"ring8", "grid25", "moons", "swiss_roll", "tabular"}
SEQUENCE_DATA = {"sequences", "synthetic_dna"}
MODEL_FOR = {"vector": "mlp", "sequence": "seq_resnet", "image": "dcgan"}
DATA_FOR = {"mlp": "ring8", "seq_resnet": "synthetic_dna"}  # every other model option is trained on digits


def kind(data: str) -> str:
    return "vector" if data in VECTOR_DATA else "sequence" if data in SEQUENCE_DATA else "image"


def _under_root(write: Callable[[Path], object]) -> Callable[[Path], list[str]]:
    """Data read from data.root: write small files into a folder and point data.root there."""

    def overrides(folder: Path) -> list[str]:
        write(folder)
        return [f"data.root={folder}"]

    return overrides


def _table(folder: Path) -> list[str]:
    make_table(folder / "table.csv", n=64)
    return [f"data.path={folder / 'table.csv'}"]


def _fasta(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    records = [f">s{i}\n{''.join(rng.choice(list('ACGT'), 10 + i % 7))}\n" for i in range(64)]
    (folder / "s.fa").write_text("".join(records))
    return [f"data.path={folder / 's.fa'}", "data.length=12"]


# data read from files: each entry writes small files into a folder and returns the overrides to find them
FILE_DATA = {
    "mnist": _under_root(lambda d: make_mnist(d, n=40)),
    "fashion_mnist": _under_root(lambda d: make_mnist(d, n=40, folder="FashionMNIST")),
    "cifar10": _under_root(lambda d: make_cifar10(d, n_per_batch=8)),
    "image_folder": lambda d: [f"data.path={make_image_folder(d, n=40)}", "data.size=16"],
    "tabular": _table,
    "sequences": _fasta,
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def data_overrides(data: str, tmp_path) -> list[str]:
    overrides = [f"data={data}", f"model={MODEL_FOR[kind(data)]}"]
    if data in FILE_DATA:
        overrides += [*FILE_DATA[data](tmp_path / "data"), "metrics=none"]  # no Inception weights here
    return overrides


def test_every_group_has_options():
    for group in ("loss", "penalty", "model", "data", "optim", "trainer", "logger", "augment", "ema", "fix"):
        assert options(group), group


@pytest.mark.parametrize("loss", options("loss"))
def test_every_loss_option_is_a_plain_loss_object(make_cfg, loss):
    """A loss file sets the loss and nothing else (recipes that also set the penalty, the optimizer or
    n_critic are fixes): composing it changes only cfg.loss."""
    assert "@package" not in (CONF_DIR / "loss" / f"{loss}.yaml").read_text()
    cfg, default = make_cfg(f"loss={loss}"), make_cfg()
    assert issubclass(get_class(cfg.loss._target_), AdversarialLoss)
    for key in ("penalty", "augment", "optim", "n_critic"):
        assert cfg[key] == default[key], key


@pytest.mark.parametrize(
    "group, base", [("penalty", Penalty), ("augment", InputTransform)], ids=["penalty", "augment"]
)
def test_each_option_of_a_component_group_holds_one_component_of_its_kind_under_its_name(
    make_cfg, group, base
):
    """So that a list of options merges (``penalty=[gp,r1]``, ``augment=[diffaug,instance_noise]``)."""
    for option in [o for o in options(group) if o != "none"]:
        components = make_cfg(f"{group}={option}")[group]
        assert list(components) == [option]
        assert issubclass(get_class(components[option]._target_), base), option


@pytest.mark.parametrize("loss", options("loss"))
@pytest.mark.parametrize("data", options("data"))
def test_every_loss_trains_on_every_dataset(make_cfg, tmp_path, loss, data):
    overrides = data_overrides(data, tmp_path) + [f"loss={loss}", "trainer.max_steps=2"]
    if data not in VECTOR_DATA:  # a penalised critic must not use batch norm (Gulrajani et al. 2017)
        overrides.append("model.discriminator.norm=layer")
    summary = train(make_cfg(*overrides))
    assert summary["status"] == "completed", summary["error"]
    assert summary["g_steps"] == 2


@pytest.mark.parametrize("model", options("model"))
def test_every_model_trains_on_the_data_it_suits(make_cfg, model):
    data = DATA_FOR.get(model, "digits")
    summary = train(make_cfg(f"model={model}", f"data={data}", "metrics=none", "trainer.max_steps=2"))
    assert summary["status"] == "completed", summary["error"]


@pytest.mark.parametrize("group", ["penalty", "optim", "logger"])
def test_every_option_of_the_other_groups_trains(make_cfg, tmp_path, monkeypatch, group):
    monkeypatch.chdir(tmp_path)  # a tracker's files outside the run folder (logger=mlflow: outputs/mlflow.db)
    for option in options(group):
        summary = train(make_cfg(f"{group}={option}", "trainer.max_steps=2", run_dir=tmp_path / option))
        assert summary["status"] == "completed", (option, summary["error"])


@pytest.mark.parametrize("augment", [*options("augment"), "[diffaug,instance_noise]"])
def test_every_augment_option_trains_on_images(make_cfg, augment):
    cfg = make_cfg(f"augment={augment}", "data=digits", "model=dcgan", "metrics=none", "trainer.max_steps=2")
    summary = train(cfg)
    assert summary["status"] == "completed", summary["error"]


@pytest.mark.parametrize("fix", options("fix"))
def test_every_fix_trains(make_cfg, fix):
    summary = train(make_cfg(f"fix={fix}", "trainer.max_steps=2"))
    assert summary["status"] == "completed", summary["error"]
    assert summary["g_steps"] == 2


@pytest.mark.parametrize("ema", options("ema"))
@pytest.mark.parametrize("data", ["ring8", "digits"])
def test_every_ema_option_trains_and_saves_its_average(make_cfg, ema, data):
    cfg = make_cfg(f"ema={ema}", *data_overrides(data, None), "metrics=none", "trainer.max_steps=2")
    assert train(cfg)["status"] == "completed"
    assert "ema" in torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)


def test_the_new_options_compose_with_each_other(make_cfg):
    """Conditional nets, projection critic with R1 and instance noise, DiffAugment, EMA, label smoothing."""
    summary = train(
        make_cfg(
            *("data=digits", "model=dcgan_cond", "model.discriminator.norm=layer", "metrics=none"),
            *("penalty=r1", "augment=[diffaug,instance_noise]", "ema=on", "loss.real_label=0.9"),
            "trainer.max_steps=2",
        )
    )
    assert summary["status"] == "completed", summary["error"]
    assert summary["metrics"]["noise/sigma"] == pytest.approx(0.1 * (1 - 1 / 2))


@pytest.mark.parametrize(
    "metrics,data",
    [
        ("toy", "ring8"),
        ("domain", "digits"),
        ("none", "grid25"),
        ("sequence", "synthetic_dna"),
        ("sequence_motifs", "synthetic_dna"),
    ],
)
def test_metrics_options_evaluate_and_record_their_protocol(make_cfg, metrics, data):
    overrides = data_overrides(data, None) + [f"metrics={metrics}", "trainer.max_steps=2"]
    summary = train(make_cfg(*overrides, "callbacks.evaluation.n_samples=64"))
    assert summary["status"] == "completed", summary["error"]
    expected = {
        "toy": {"metrics/modes", "metrics/hq"},
        "domain": {
            "metrics/fid",
            "metrics/kid_mean",
            "metrics/precision",
            "metrics/recall",
            "metrics/density",
            "metrics/coverage",
        },
        "none": set(),
        "sequence": {"metrics/kmer_js", "metrics/kmer_js_4", "metrics/memorised", "metrics/distinct"},
        "sequence_motifs": {"metrics/kmer_js", "metrics/memorised", "metrics/motif_rate_error"},
    }
    assert expected[metrics] <= set(summary["metrics"])
    assert (metrics == "none") == (summary["metrics_protocol"] == {})
    for protocol in summary["metrics_protocol"].values():
        assert protocol["n_fake"] == 64


def test_each_dataset_picks_its_metrics_and_the_command_line_wins(make_cfg):
    assert set(make_cfg("data=grid25").callbacks.evaluation.metrics) == {"modes"}
    assert set(make_cfg("data=digits").callbacks.evaluation.metrics) == {"fid", "kid", "prdc"}
    assert set(make_cfg("data=synthetic_dna").callbacks.evaluation.metrics) == {
        "kmers",
        "memorisation",
        "motifs",
    }
    assert set(make_cfg("data=sequences").callbacks.evaluation.metrics) == {"kmers", "memorisation"}
    assert make_cfg("data=mnist").callbacks.evaluation.metrics.fid.features == "inception"
    assert dict(make_cfg("data=mnist", "metrics=none").callbacks.evaluation.metrics) == {}


def test_inception_metrics_without_weights_fail_with_where_to_put_them(make_cfg, tmp_path):
    weights = f"metrics.inception_weights={tmp_path}/w.pth"
    cfg = make_cfg("data=digits", "model=dcgan", "metrics=inception", weights, "trainer.max_steps=1")
    with pytest.raises(ConfigError, match="w.pth") as info:  # before anything is written: a sweep goes on
        train(cfg)
    assert "callbacks.evaluation.metrics." in str(info.value) and not tmp_path.joinpath("run").exists()


@pytest.mark.parametrize("trainer", [t for t in options("trainer") if t != "gpu"])
def test_cpu_trainer_options_train(make_cfg, trainer):
    assert train(make_cfg(f"trainer={trainer}", "trainer.max_steps=1"))["status"] == "completed"


def test_gpu_trainer_option_composes(make_cfg):
    assert make_cfg("trainer=gpu").trainer.accelerator == "gpu"


def test_fix_wgan_gp_brings_loss_penalty_n_critic_and_optimizer_of_the_paper(make_cfg):
    """Gulrajani et al. 2017, algorithm 1: lambda 10, n_critic 5, Adam(1e-4, 0, 0.9), no clipping."""
    cfg = make_cfg("fix=wgan_gp")
    assert dict(cfg.loss) == {"_target_": "ganlab.losses.WassersteinLoss", "clip": 0.0}
    assert cfg.n_critic == 5
    assert list(cfg.penalty) == ["gp"] and cfg.penalty.gp.weight == 10.0 and cfg.penalty.gp.center == 1.0
    for net in ("g", "d"):
        assert cfg.optim[net]._target_ == "torch.optim.Adam"
        assert cfg.optim[net].lr == 1e-4 and list(cfg.optim[net].betas) == [0.0, 0.9]


def test_fix_wgan_brings_clipping_rmsprop_and_n_critic_of_the_paper(make_cfg):
    """Arjovsky et al. 2017, algorithm 1: c 0.01, n_critic 5, RMSProp 5e-5, no penalty."""
    cfg = make_cfg("fix=wgan")
    assert dict(cfg.loss) == {"_target_": "ganlab.losses.WassersteinLoss", "clip": 0.01}
    assert cfg.n_critic == 5 and dict(cfg.penalty) == {}
    for net in ("g", "d"):
        assert cfg.optim[net]._target_ == "torch.optim.RMSprop" and cfg.optim[net].lr == 5e-5
    assert make_cfg("loss=wasserstein").loss.clip == 0.0  # the loss alone clips nothing


@pytest.mark.parametrize("fix", ["wgan_gp", "wgan"])
def test_command_line_wins_over_what_a_fix_brings(make_cfg, fix):
    """fix comes after loss/penalty/optim in the defaults list, yet a group choice or a value on the
    command line overrides the fix's, whichever order they are written in."""
    for overrides in (
        [f"fix={fix}", "optim=sgd", "penalty=r1", "n_critic=2", "loss.clip=0.05"],
        ["optim=sgd", "penalty=r1", "loss.clip=0.05", "n_critic=2", f"fix={fix}"],
    ):
        cfg = make_cfg(*overrides)
        assert cfg.optim.g._target_ == cfg.optim.d._target_ == "torch.optim.SGD", overrides
        assert list(cfg.penalty) == ["r1"] and cfg.n_critic == 2 and cfg.loss.clip == 0.05


def test_ttur_sets_learning_rates_per_network(make_cfg):
    cfg = make_cfg("optim=ttur")
    assert cfg.optim.d.lr == 4 * cfg.optim.g.lr
    assert make_cfg("optim.d.lr=1e-3").optim.g.lr == 2e-4
