"""The generator EMA: the closed-form average of the recorded weights, buffers copied, sampling from the
average, and the average's round trip through a checkpoint and a resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from ganlab.callbacks.ema import EMA
from ganlab.nets import run
from ganlab.train import build, build_trainer

DECAY, START, STEPS = 0.8, 2, 7


class RecordG(pl.Callback):
    """G's parameters in float64 before training and after every generator step."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def record(self, pl_module) -> None:
        params = pl_module.generator.named_parameters()
        self.weights.append({k: p.detach().double().clone() for k, p in params})

    def on_train_start(self, trainer, pl_module) -> None:
        self.record(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.record(pl_module)


def closed_form(weights: list[dict[str, torch.Tensor]], decay: float, start: int) -> dict[str, torch.Tensor]:
    """avg_n = decay^(n-s) theta_s + sum_{t=s+1..n} (1 - decay) decay^(n-t) theta_t."""
    n = len(weights) - 1
    return {
        key: decay ** (n - start) * weights[start][key]
        + sum((1 - decay) * decay ** (n - t) * weights[t][key] for t in range(start + 1, n + 1))
        for key in weights[0]
    }


@pytest.fixture
def trained(make_cfg, tmp_path):
    """A run with batch norm and spectral norm in G (buffers of both kinds), EMA on, and G recorded."""
    cfg = make_cfg(
        *("ema=on", f"ema.decay={DECAY}", f"ema.start={START}", f"trainer.max_steps={STEPS}"),
        *("model.generator.norm=batch", "model.generator.spectral_norm=true", "optim.g.lr=1e-2"),
        run_dir=tmp_path / "run",
    )
    module, datamodule = build(cfg)
    trainer = build_trainer(cfg, tmp_path / "run")
    recorder = RecordG()
    trainer.callbacks.append(recorder)
    trainer.fit(module, datamodule=datamodule)
    (ema,) = [cb for cb in trainer.callbacks if isinstance(cb, EMA)]
    return cfg, module, ema, recorder


def test_average_is_the_closed_form_exponential_average_of_the_recorded_weights(trained):
    _, module, ema, recorder = trained
    assert len(recorder.weights) == STEPS + 1
    expected = closed_form(recorder.weights, DECAY, START)
    averaged = dict(ema.average.named_parameters())
    assert averaged.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(averaged[key].double(), value, rtol=1e-5, atol=1e-6)
    last = recorder.weights[-1]
    assert max((averaged[k].double() - last[k]).abs().max().item() for k in last) > 1e-3  # it did average


def test_buffers_are_copied_from_the_generator_not_averaged(trained):
    _, module, ema, _ = trained
    generator_buffers = dict(module.generator.named_buffers())
    names = set(dict(ema.average.named_buffers()))
    assert any(n.endswith("running_mean") for n in names) and any(n.endswith("._u") for n in names)
    for name, buffer in ema.average.named_buffers():
        assert torch.equal(buffer, generator_buffers[name]), name


def test_average_lives_outside_the_module_and_generate_draws_from_it(trained):
    _, module, ema, _ = trained
    assert not any(key.startswith("_sampling") for key in module.state_dict())
    assert all(m is not ema.average for m in module.modules())
    assert not any(p.requires_grad for p in ema.average.parameters())
    z = torch.randn(16, module.z_dim)
    torch.testing.assert_close(module.generate(z), run(ema.average, z, None), rtol=0, atol=0)
    raw = module.generator.eval()(z)
    assert not torch.allclose(module.generate(z), raw)


def test_checkpoint_holds_the_average_and_a_resume_restores_it(trained, tmp_path):
    cfg, _, ema, _ = trained
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["ema"]["decay"] == DECAY and ckpt["ema"]["start"] == START
    saved = ckpt["ema"]["state_dict"]
    assert saved.keys() == ema.average.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in ema.average.state_dict().items())
    module, datamodule = build(cfg)  # fresh weights, a fresh EMA callback
    trainer = build_trainer(cfg, tmp_path / "resumed")
    (fresh,) = [cb for cb in trainer.callbacks if isinstance(cb, EMA)]
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(last))  # already at max_steps: restore only
    assert all(torch.equal(saved[k], v) for k, v in fresh.average.state_dict().items())
    z = torch.randn(8, module.z_dim)
    torch.testing.assert_close(module.generate(z), run(ema.average, z, None), rtol=0, atol=0)


def test_ema_null_adds_no_callback_and_bad_settings_are_refused(make_cfg, tmp_path):
    cfg = make_cfg()
    assert cfg.ema is None and cfg.callbacks.ema is None
    assert not any(isinstance(cb, EMA) for cb in build_trainer(cfg, tmp_path).callbacks)
    assert make_cfg("ema=on").callbacks.ema.decay == 0.999
    for kwargs in ({"decay": 1.0}, {"decay": -0.1}, {"start": -1}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            EMA(**kwargs)
