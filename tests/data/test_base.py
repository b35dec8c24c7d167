"""The data-module contract's ``in_memory`` option: the training set moves to the trainer's device once,
batches come without worker processes, and the toy and digits configs turn it on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader

from ganlab.data.base import InProcessBatches
from ganlab.data.toy import Ring8
from ganlab.train import build, build_trainer


def _fake_trainer(device: str) -> SimpleNamespace:
    return SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)))


def test_in_memory_or_no_workers_gathers_in_process_and_workers_get_a_data_loader():
    """The in-process batches are the loader's, in the same order."""
    in_memory = Ring8(n_train=64, batch_size=8, num_workers=2, in_memory=True, shuffle_seed=3)
    assert isinstance(in_memory.train_dataloader(), InProcessBatches)
    assert isinstance(Ring8(n_train=64, batch_size=8).train_dataloader(), InProcessBatches)
    workers = Ring8(n_train=64, batch_size=8, num_workers=2, shuffle_seed=3)
    loader = workers.train_dataloader()
    assert isinstance(loader, DataLoader) and loader.num_workers == 2
    for (x, y), (xl, yl) in zip(in_memory.train_dataloader(), loader, strict=True):
        assert torch.equal(x, xl) and torch.equal(y, yl)


def test_in_memory_moves_the_training_set_to_the_trainers_device_in_setup():
    """Loaded on the CPU before a trainer exists (ganlab.train builds the nets from it), moved to the
    trainer's root device when the trainer sets it up ("meta" stands in for a GPU here)."""
    dm = Ring8(n_train=64, batch_size=8, in_memory=True)
    dm.setup("fit")
    assert dm.train_set.x.device.type == "cpu"
    dm.trainer = _fake_trainer("meta")
    dm.setup("fit")
    assert dm.train_set.x.device.type == "meta" and dm.train_set.y.device.type == "meta"
    kept = Ring8(n_train=64, batch_size=8)
    kept.setup("fit")
    kept.trainer = _fake_trainer("meta")
    kept.setup("fit")
    assert kept.train_set.x.device.type == "cpu"


def test_real_sample_is_on_the_cpu():
    dm = Ring8(n_train=64, batch_size=8, in_memory=True)
    assert dm.real_sample(10).device.type == "cpu"


@pytest.mark.parametrize("data", ["ring8", "grid25", "moons", "swiss_roll", "digits"])
def test_small_datasets_are_in_memory_by_default_and_train(make_cfg, tmp_path, data):
    model = "dcgan" if data == "digits" else "mlp"
    cfg = make_cfg(
        f"data={data}", f"model={model}", "metrics=none", "+data.num_workers=2", "trainer.max_steps=2"
    )
    assert cfg.data.in_memory is True
    module, datamodule = build(cfg)
    trainer = build_trainer(cfg, tmp_path)
    trainer.fit(module, datamodule=datamodule)
    assert module.g_steps == 2
    assert isinstance(trainer.train_dataloader, InProcessBatches)  # no worker processes
    assert datamodule.train_set.x.device == trainer.strategy.root_device


def test_file_datasets_keep_their_loader(make_cfg):
    assert "in_memory" not in make_cfg("data=mnist").data  # the default, False
