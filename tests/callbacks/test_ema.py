"""The generator EMA: the closed-form average of the recorded weights, spectral-norm buffers copied and
batch-norm statistics recomputed for the average, sampling from the average, and the average's round trip
through a checkpoint and a resume."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from ganlab.callbacks.ema import EMA, STANDING_SEED
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


def standing_statistics_by_hand(ema: EMA) -> dict[str, torch.Tensor]:
    """Each batch-norm layer's running mean and variance as the mean over the ``standing_batches`` batches
    (noise seeded ``STANDING_SEED + g_step``) of its inputs' batch mean and unbiased batch variance, read
    by hooks on a copy of the average whose batch-norm layers normalise by batch statistics."""
    net = copy.deepcopy(ema.average).eval()
    seen: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def hook(name):
        def record(module, inputs, output):
            x = inputs[0].double()
            dims = [0, *range(2, x.dim())]
            seen.setdefault(name, []).append((x.mean(dims), x.var(dims, unbiased=True)))

        return record

    for name, m in net.named_modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.train().register_forward_hook(hook(name))
    noise = torch.Generator().manual_seed(STANDING_SEED + ema.g_step)
    with torch.no_grad():
        for _ in range(ema.standing_batches):
            net(torch.randn(ema.batch_size, ema.z_dim, generator=noise))
    expected = {}
    for name, stats in seen.items():
        assert len(stats) == ema.standing_batches
        expected[f"{name}.running_mean"] = torch.stack([m for m, _ in stats]).mean(0)
        expected[f"{name}.running_var"] = torch.stack([v for _, v in stats]).mean(0)
    return expected


def test_spectral_norm_buffers_are_copied_and_batch_norm_gets_standing_statistics(trained):
    """G's running statistics describe G's activations; the average's are recomputed for its own weights."""
    _, module, ema, _ = trained
    generator_buffers = dict(module.generator.named_buffers())
    buffers = dict(ema.average.named_buffers())
    assert any(n.endswith("._u") for n in buffers)
    for name in [n for n in buffers if n.endswith(("._u", "._v"))]:
        assert torch.equal(buffers[name], generator_buffers[name]), name
    assert not ema.stale and ema.g_step == STEPS  # recomputed for the final checkpoint
    expected = standing_statistics_by_hand(ema)
    assert expected and all(name in buffers for name in expected)
    for name, value in expected.items():
        torch.testing.assert_close(buffers[name].double(), value, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(buffers[name].double(), generator_buffers[name].double(), atol=1e-3), name


def test_generate_recomputes_the_statistics_after_an_update_and_zero_batches_keep_g_s(trained):
    _, module, ema, _ = trained
    before = {k: v.clone() for k, v in ema.average.named_buffers() if k.endswith("running_mean")}
    ema.update(module.generator, ema.g_step + 1)
    assert ema.stale
    module.generate(torch.randn(4, module.z_dim))
    assert not ema.stale
    after = dict(ema.average.named_buffers())
    assert all(not torch.equal(after[k], v) for k, v in before.items())
    ema.standing_batches = 0
    ema.update(module.generator, ema.g_step + 1)
    module.generate(torch.randn(4, module.z_dim))
    for name, buffer in ema.average.named_buffers():
        assert torch.equal(buffer, dict(module.generator.named_buffers())[name]), name


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
    for kwargs in ({"decay": 1.0}, {"decay": -0.1}, {"start": -1}, {"standing_batches": -1}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            EMA(**kwargs)


def test_a_conditional_generator_gets_standing_statistics_with_drawn_labels(make_cfg, tmp_path):
    """Class-conditional G (conditional batch norm in dcgan_cond): the standing batches carry labels."""
    from ganlab.train import train

    cfg = make_cfg(
        "data=digits", "model=dcgan_cond", "ema=on", "trainer.max_steps=3", run_dir=tmp_path / "run"
    )
    assert train(cfg)["status"] == "completed"
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    averaged, generator = ckpt["ema"]["state_dict"], ckpt["state_dict"]
    means = [k for k in averaged if k.endswith("running_mean")]
    assert means and all(not torch.equal(averaged[k], generator[f"generator.{k}"]) for k in means)
