"""Bad input gets a clear error before anything is written: the message names the key, its value and
what is valid; the command line exits non-zero; no new run folder is left; an existing run is untouched."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fakedata import make_mnist
from ganlab.cli import hint_unknown_keys
from ganlab.config import ConfigError, renamed_option_hints
from ganlab.train import train


def rejected(make_cfg, *overrides: str, run_dir: Path | None = None, tiny: bool = True) -> str:
    """The ConfigError message of a config, checking that its run folder was not created."""
    cfg = make_cfg(*overrides, run_dir=run_dir, tiny=tiny)
    folder = Path(cfg.paths.output_dir)
    existed = folder.exists()
    with pytest.raises(ConfigError) as info:
        train(cfg)
    assert folder.exists() == existed
    return str(info.value)


@pytest.mark.parametrize(
    "override, named, valid",
    [
        ("optim.g.lr=-1", "optim.g.lr=-1", "a number > 0"),
        ("optim.d.lr=abc", "optim.d.lr='abc'", "a number > 0"),
        ("optim.g.lr=0", "optim.g.lr=0", "a number > 0"),
        ("data.batch_size=0", "data.batch_size=0", "an integer > 0"),
        ("data.batch_size=many", "data.batch_size='many'", "an integer > 0"),
        ("n_critic=0", "n_critic=0", "an integer > 0"),
        ("n_critic=1.5", "n_critic=1.5", "an integer > 0"),
        ("trainer.max_steps=-3", "trainer.max_steps=-3", "an integer > 0"),
        ("resume=''", "resume=''", "Valid: auto"),
    ],
)
def test_bad_numbers_name_key_value_and_what_is_valid(make_cfg, override, named, valid):
    message = rejected(make_cfg, override, tiny=False)  # (the tiny settings would replace data.batch_size)
    assert named in message and valid in message


@pytest.mark.parametrize("weight", ["0", "-2", "x"])
def test_bad_penalty_weight(make_cfg, weight):
    message = rejected(make_cfg, "penalty=gp", f"penalty.gp.weight={weight}")
    assert "penalty.gp.weight=" in message and "a number > 0" in message


@pytest.mark.parametrize(
    "override, named, group_hint",
    [
        (  # instance noise chosen as a penalty by _target_: told that it is a transform of the augment group
            "+penalty.instance_noise={_target_:ganlab.augment.InstanceNoise,sigma0:0.1}",
            "penalty.instance_noise._target_='ganlab.augment.InstanceNoise' is not a regulariser",
            "in the augment group (augment=instance_noise, its settings under augment.instance_noise.*)",
        ),
        (
            "+augment.gp={_target_:ganlab.penalties.GradientPenalty,weight:10}",
            "augment.gp._target_='ganlab.penalties.GradientPenalty' is not a transform of every D input",
            "choose it in the penalty group (penalty=gp,",
        ),
        ("+augment.blur={_target_:torch.nn.Identity}", "augment.blur._target_='torch.nn.Identity'", None),
        (
            "+penalty.l2={_target_:ganlab.penalties.L2}",
            "penalty.l2._target_='ganlab.penalties.L2' cannot be",
            None,
        ),
        ("+augment.policy=color", "augment.policy='color' is not a component", None),
    ],
)
def test_a_component_in_the_wrong_group_names_the_key_and_what_is_valid(
    make_cfg, override, named, group_hint
):
    message = rejected(make_cfg, override)
    group = "augment" if override.startswith("+augment") else "penalty"
    base = {"augment": "ganlab.augment.InputTransform", "penalty": "ganlab.penalties.Penalty"}[group]
    assert named in message and f"a {base} subclass" in message, message
    assert (group_hint is None) == ("choose it in" not in message), message
    assert group_hint is None or group_hint in message, message


@pytest.mark.parametrize(
    "args, expected",
    [
        (["loss=wgan_gp"], ["loss=wgan_gp was renamed: use fix=wgan_gp (the Wasserstein loss"]),
        (["loss=wgan", "seed=1"], ["loss=wgan was renamed: use fix=wgan (the Wasserstein loss"]),
        (["penalty=[instance_noise,r1]"], ["penalty=instance_noise was renamed: use augment=instance_noise"]),
        (["penalty=[r1, instance_noise]"], ["penalty=instance_noise was renamed"]),
        (  # a sweep names several, each once
            ["-m", "loss=hinge,wgan,wgan_gp", "+penalty=instance_noise", "loss=wgan"],
            ["loss=wgan was renamed", "loss=wgan_gp was renamed", "penalty=instance_noise was renamed"],
        ),
        (["loss=wasserstein", "fix=wgan_gp", "fix=wgan", "augment=instance_noise", "loss.clip=0.01"], []),
        (["optim=wgan_gp", "penalty=[gp,r1]", "tags=[wgan_gp,instance_noise]", "-m"], []),
    ],
)
def test_renamed_options_get_one_line_naming_the_new_spelling(args, expected):
    hints = renamed_option_hints(args)
    assert len(hints) == len(expected), hints
    for hint, start in zip(hints, expected, strict=True):
        assert hint.startswith(f"ganlab: {start}") and hint.endswith("."), hint


def test_the_wgan_gp_hint_says_what_each_spelling_now_means():
    assert renamed_option_hints(["loss=wgan_gp"]) == [
        "ganlab: loss=wgan_gp was renamed: use fix=wgan_gp (the Wasserstein loss with its gradient penalty, "
        "optimizer and n_critic); loss=wasserstein is the loss alone."
    ]


@pytest.mark.parametrize(
    "overrides, named, valid",
    [
        (["model=dcgan"], ["model=dcgan", "data=grid25", "(2,)"], "model=mlp"),
        (["model=mlp", "data=digits"], ["model=mlp", "data=digits", "(1, 8, 8)"], "model=dcgan"),
    ],
)
def test_a_model_that_does_not_fit_the_data_is_a_config_error(make_cfg, overrides, named, valid):
    message = rejected(make_cfg, *overrides)
    assert all(n in message for n in named) and valid in message


def test_a_step_batch_larger_than_the_dataset(make_cfg):
    message = rejected(make_cfg, "n_critic=100")  # tiny: 512 training samples, data.batch_size=8
    assert "data.batch_size=8" in message and "n_critic=100" in message and "<= 512" in message


def test_gradient_penalty_with_a_batch_normalised_critic_is_refused_unless_allowed(
    make_cfg, tmp_path, caplog
):
    message = rejected(make_cfg, "penalty=gp", "model.discriminator.norm=batch")
    assert "model.discriminator.norm=batch" in message and "penalty.gp" in message
    assert "norm=layer" in message and "allow_bn_with_penalty=true" in message
    with caplog.at_level(logging.WARNING, logger="ganlab"):
        summary = train(
            make_cfg(
                "penalty=gp",
                "model.discriminator.norm=batch",
                "allow_bn_with_penalty=true",
                run_dir=tmp_path / "allowed",
            )
        )
    assert summary["status"] == "completed"
    assert any("allow_bn_with_penalty=true" in r.getMessage() for r in caplog.records)


def test_a_callback_that_cannot_be_built(make_cfg):
    message = rejected(make_cfg, "callbacks.checkpoint.signals=[SIGNOPE]")
    assert "callbacks.checkpoint" in message and "SIGNOPE" in message and "SIGTERM" in message


def test_more_devices_than_the_machine_has(make_cfg):
    message = rejected(make_cfg, "trainer=cpu", "trainer.devices=100000")
    assert "trainer.devices=100000" in message and f"({os.cpu_count()})" in message and "Valid" in message
    if not torch.cuda.is_available():
        message = rejected(make_cfg, "trainer=gpu")
        assert "trainer.accelerator='gpu'" in message and "trainer=cpu" in message


def test_missing_and_corrupt_dataset_files(make_cfg, tmp_path):
    root = tmp_path / "data"
    message = rejected(
        make_cfg, "data=mnist", "model=dcgan", "model.discriminator.norm=layer", f"data.root={root}"
    )
    assert "data=mnist" in message and str(root) in message and "train-images-idx3-ubyte" in message
    make_mnist(root, n=40)
    (root / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"not an idx file")
    message = rejected(
        make_cfg, "data=mnist", "model=dcgan", "model.discriminator.norm=layer", f"data.root={root}"
    )
    assert "data=mnist" in message and "corrupt" in message


def test_missing_corrupt_and_foreign_checkpoints_for_resume(make_cfg, tmp_path):
    missing = tmp_path / "nothing.ckpt"
    message = rejected(make_cfg, f"resume={missing}")
    assert f"resume='{missing}'" in message and "no such checkpoint" in message
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"\x00" * 100)
    assert "cannot be read" in rejected(make_cfg, f"resume={corrupt}")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    assert "not a ganlab checkpoint" in rejected(make_cfg, f"resume={foreign}")


def test_resume_from_a_run_with_another_architecture_names_the_differing_keys(make_cfg, tmp_path):
    train(make_cfg("trainer.max_steps=1", run_dir=tmp_path / "a"))
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    message = rejected(make_cfg, f"resume={ckpt}", "model.generator.activation=elu", run_dir=tmp_path / "b")
    assert "model.generator.activation: 'relu' in the checkpoint, 'elu' now" in message
    message = rejected(
        make_cfg,
        f"resume={ckpt}",
        "data=digits",
        "model=dcgan",
        "model.discriminator.norm=layer",
        run_dir=tmp_path / "c",
    )
    assert (
        "model.generator._target_" in message
        and "data shape: (2,) in the checkpoint, (1, 8, 8) now" in message
    )


def test_unknown_top_level_key_gets_a_hint_with_the_valid_names():
    (hint,) = hint_unknown_keys(["los=hinge", "seed=1", "+tags=[a]", "hydra.run.dir=x"])
    assert "'los'" in hint and "did you mean 'loss'" in hint and "optim" in hint and "penalty" in hint


def test_a_mistyped_nested_key_gets_a_hint_from_the_config_the_group_choices_compose_to():
    hints = hint_unknown_keys(["model=dcgan", "model.generator.widht=3", "trainer.max_step=3", "seed=1"])
    assert len(hints) == 2
    assert (
        "'widht'" in hints[0] and "did you mean 'width'" in hints[0] and "keys of model.generator" in hints[0]
    )
    assert "'max_step'" in hints[1] and "'max_steps'" in hints[1]
    assert hint_unknown_keys(["model=dcgan", "model.generator.width=3", "data.batch_size=4"]) == []


# through the command line ----------------------------------------------------------------------------------
def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "ganlab.train", "logger=none", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_cli_invalid_value_exits_2_with_one_paragraph_and_leaves_no_run_folder(tmp_path):
    proc = cli("optim.g.lr=-1", "hydra.run.dir=outputs/runs/new", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    message = [line for line in proc.stderr.splitlines() if line.startswith("ganlab: invalid config")]
    assert message == ["ganlab: invalid config: optim.g.lr=-1 is invalid: it must be a number > 0."]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()  # nor the parents Hydra made for it


def test_cli_old_spelling_exits_non_zero_naming_the_new_one_and_writes_nothing(tmp_path):
    proc = cli("loss=wgan_gp", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Could not find 'loss/wgan_gp'" in proc.stderr  # Hydra's own error, then ganlab's line
    assert "ganlab: loss=wgan_gp was renamed: use fix=wgan_gp" in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "outputs").exists()


def test_cli_bad_rerun_into_an_existing_run_leaves_every_file_unchanged(make_cfg, tmp_path):
    run = tmp_path / "run"
    train(make_cfg("trainer.max_steps=2", run_dir=run))
    (run / "train.log").write_text("the run's log\n")
    before = hashes(run)
    assert ".hydra/config.yaml" in before and "summary.json" in before and "checkpoints/last.ckpt" in before
    proc = cli("model=dcgan", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "model=dcgan" in proc.stderr and "data=grid25" in proc.stderr
    assert hashes(run) == before


TINY_CLI = [
    "trainer.max_steps=2",
    "model.generator.width=8",
    "model.discriminator.width=8",
    "data.n_train=512",
    "data.batch_size=16",
    "callbacks.evaluation.n_samples=100",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A completed run made through the command line (shared by the cases, which must not change it)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    proc = cli(*TINY_CLI, f"hydra.run.dir={run}", cwd=run.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"status": "completed"' in (run / "summary.json").read_text()
    return run


@pytest.mark.parametrize(
    "bad, named",
    [
        (["trainer.precision=bogus"], ["trainer", "'bogus'", "precision"]),
        (["trainer.accelerator=quantum"], ["trainer", "quantum"]),
        (["logger=tensorboard", "logger.tensorboard._target_=nowhere.Logger"], ["logger.tensorboard"]),
    ],
)
def test_cli_bad_trainer_or_logger_value_leaves_a_finished_run_byte_identical(finished_run, bad, named):
    """The Trainer and its trackers are built before the run folder is touched: a bad ``trainer.*`` or
    ``logger.*`` value in a rerun of a completed run exits 2 with one paragraph and changes no file."""
    run, tmp_path = finished_run, finished_run.parent
    before = hashes(run)
    proc = cli(*TINY_CLI, *bad, "trainer.max_steps=4", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    message = [line for line in proc.stderr.splitlines() if line.startswith("ganlab: invalid config")]
    assert len(message) == 1 and all(n in message[0] for n in named), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert hashes(run) == before


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            "loss=foo",
            ["Available options in 'loss'", "hinge", "wasserstein"],
        ),  # Hydra lists a group's options
        ("los=hinge", ["'los'", "did you mean 'loss'", "Valid top-level keys and groups"]),  # ganlab's hint
    ],
)
def test_unknown_group_option_or_key_exits_1_listing_the_valid_ones(
    tmp_path, monkeypatch, capsys, override, expected
):
    """Through ``main`` in this process (the command line's code path, without a second of imports)."""
    from hydra.core.global_hydra import GlobalHydra

    from ganlab.cli import main

    GlobalHydra.instance().clear()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["ganlab.train", override, "hydra.run.dir=run"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert all(e in err for e in expected), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["yes", "1", "null"])
def test_compile_must_be_true_or_false(make_cfg, value):
    message = rejected(make_cfg, f"compile={value}")
    assert "compile=" in message and "Valid: true" in message and "or false" in message


@pytest.mark.parametrize("precision", ["16-mixed", "16"])
def test_float16_mixed_precision_on_cpu_is_refused_naming_what_is_valid(make_cfg, precision):
    """Lightning would quietly train such a run in bf16-mixed."""
    message = rejected(make_cfg, "trainer=cpu", f"trainer.precision={precision}")
    assert f"trainer.precision={precision} on CPU" in message and "32-true or bf16-mixed" in message
