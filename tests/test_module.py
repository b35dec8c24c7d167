"""The GAN module: exact update counts, max_steps in generator updates, divergence, reproducibility."""

from __future__ import annotations

import math
import sys

import pytest
import pytorch_lightning as pl
import torch

from ganlab.losses import RelativisticAverageLoss
from ganlab.module import GAN, Diverged, grad_norm
from ganlab.summary import read_summary
from ganlab.train import build, build_trainer, train


def adam_steps(optimizer: torch.optim.Optimizer) -> set[int]:
    """Adam's per-parameter step counters: the number of updates each parameter received."""
    return {int(state["step"]) for state in optimizer.state.values()}


@pytest.mark.parametrize("n_critic,max_steps", [(1, 4), (3, 5), (5, 2)])
def test_max_steps_counts_generator_updates_and_each_step_does_n_critic_d_updates(
    make_cfg, n_critic, max_steps
):
    cfg = make_cfg(f"n_critic={n_critic}", f"trainer.max_steps={max_steps}")
    summary = train(cfg)
    assert summary["status"] == "completed"
    assert summary["g_steps"] == max_steps and summary["d_steps"] == max_steps * n_critic
    ckpt = torch.load(cfg.paths.output_dir + "/checkpoints/last.ckpt", weights_only=True)
    opt_g, opt_d = ckpt["optimizer_states"]
    assert {int(s["step"]) for s in opt_g["state"].values()} == {max_steps}
    assert {int(s["step"]) for s in opt_d["state"].values()} == {max_steps * n_critic}
    assert ckpt["global_step"] == max_steps  # Lightning counts the generator updates (D's bypass its wrapper)


@pytest.mark.parametrize("loss", ["non_saturating", "hinge", "rsgan"])
def test_one_step_is_n_critic_d_updates_on_their_own_real_slices_then_one_g_update(make_cfg, tmp_path, loss):
    """A loss without g_needs_real costs one D forward in the G step (as before the contract); a
    relativistic one a second, on the step's last real slice."""
    cfg = make_cfg("n_critic=3", "trainer.max_steps=1", f"loss={loss}")
    module, datamodule = build(cfg)
    calls: list[tuple[str, torch.Tensor]] = []
    batches: list[torch.Tensor] = []

    def record(name: str, tensor: torch.Tensor) -> None:
        if batches and len(batches) == 1 and not module.g_steps:  # inside the first training step only
            calls.append((name, tensor.detach()))

    module.discriminator.register_forward_hook(lambda m, inp, out: record("D", inp[0]))
    module.generator.register_forward_hook(lambda m, inp, out: record("G", out))

    class RecordBatch(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            batches.append(batch[0].clone())

    trainer = build_trainer(cfg, tmp_path)
    trainer.callbacks.append(RecordBatch())
    trainer.fit(module, datamodule=datamodule)
    # each D update: G makes fakes, D sees real then fake; then the G update: G, D on its fakes (and reals)
    g_step = ["G", "D", "D"] if module.loss.g_needs_real else ["G", "D"]
    assert [name for name, _ in calls] == ["G", "D", "D"] * 3 + g_step
    assert torch.equal(calls[10][1], calls[9][1])  # D scores G's fakes
    if module.loss.g_needs_real:
        assert torch.equal(calls[11][1], batches[0].chunk(3)[-1])  # the slice D last trained on
    reals = [calls[3 * k + 1][1] for k in range(3)]
    assert torch.equal(torch.cat(reals), batches[0])  # three distinct slices of the step batch
    fakes = [calls[3 * k][1] for k in range(3)]
    assert all(torch.equal(calls[3 * k + 2][1], fakes[k]) for k in range(3))
    assert not torch.equal(fakes[0], fakes[1])  # fresh noise for each critic update
    opt_g, opt_d = trainer.optimizers
    assert adam_steps(opt_d) == {3} and adam_steps(opt_g) == {1}
    assert module.d_steps == 3 and module.g_steps == 1


def test_same_seed_gives_identical_weights(make_cfg, tmp_path):
    def weights(run: str, seed: int) -> dict[str, torch.Tensor]:
        cfg = make_cfg(f"seed={seed}", "trainer.max_steps=5", "n_critic=2", run_dir=tmp_path / run)
        train(cfg)
        return torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]

    a, b, c = weights("a", 7), weights("b", 7), weights("c", 8)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_nan_learning_rate_run_is_marked_diverged_with_its_step(make_cfg):
    cfg = make_cfg("optim.d.lr=1e30", "optim.g.lr=1e30", "trainer.max_steps=50")
    summary = train(cfg)
    assert summary["status"] == "diverged"
    assert 0 <= summary["diverged_at"]["g_step"] < 50 and "not finite" in summary["error"]
    assert read_summary(cfg.paths.output_dir)["status"] == "diverged"


def test_diverged_error_names_the_step():
    err = Diverged("generator loss", 12, 60)
    assert "generator step 12" in str(err) and "discriminator step 60" in str(err)


def test_grad_norm_is_the_global_l2_norm():
    net = torch.nn.Linear(2, 2)
    for p, value in zip(net.parameters(), (3.0, 4.0), strict=True):
        p.grad = torch.full_like(p, value)
    # weight 4 entries of 3, bias 2 entries of 4: sqrt(4*9 + 2*16)
    assert grad_norm(net).item() == pytest.approx((4 * 9 + 2 * 16) ** 0.5)


def test_clip_grad_norm_bounds_the_applied_update(make_cfg):
    cfg = make_cfg(
        "clip_grad_norm.d=1e-3",
        "clip_grad_norm.g=1e-3",
        "optim.g._target_=torch.optim.SGD",
        "optim.d._target_=torch.optim.SGD",
        "~optim.g.betas",
        "~optim.d.betas",
        "optim.g.lr=1.0",
        "optim.d.lr=1.0",
        "trainer.max_steps=1",
    )
    module, datamodule = build(cfg)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    pl.Trainer(
        max_steps=1,  # Lightning counts generator updates
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(module, datamodule=datamodule)
    for prefix in ("generator.", "discriminator."):
        delta = torch.cat(
            [(module.state_dict()[k] - before[k]).flatten() for k in before if k.startswith(prefix)]
        )
        assert delta.norm().item() == pytest.approx(1e-3, rel=1e-4)  # SGD lr 1: update = clipped gradient
    assert isinstance(module, GAN)


def test_lr_schedule_steps_once_per_generator_step_for_both_optimizers(make_cfg):
    """Cosine annealing over T steps: after k generator steps, lr = lr0 (1 + cos(pi k / T)) / 2."""
    cfg = make_cfg(
        "n_critic=2",
        "trainer.max_steps=6",
        "+lr_schedule._target_=torch.optim.lr_scheduler.CosineAnnealingLR",
        "+lr_schedule._partial_=true",
        "+lr_schedule.T_max=8",
    )
    train(cfg)
    ckpt = torch.load(cfg.paths.output_dir + "/checkpoints/last.ckpt", weights_only=True)
    expected = 2e-4 * (1 + math.cos(math.pi * 6 / 8)) / 2
    for state in ckpt["lr_schedulers"]:
        assert state["last_epoch"] == 6
        assert state["_last_lr"][0] == pytest.approx(expected, rel=1e-9)
    for opt in ckpt["optimizer_states"]:
        assert opt["param_groups"][0]["lr"] == pytest.approx(expected, rel=1e-9)


def test_conditional_nets_get_the_batch_labels_for_reals_and_one_uniform_draw_for_each_fake_batch(
    make_cfg, tmp_path
):
    """n_critic 2: D update k scores real slice k with its labels and fakes with the labels G was given;
    the G update passes its labels to D too."""
    cfg = make_cfg("data=digits", "model=dcgan_cond", "metrics=none", "n_critic=2", "trainer.max_steps=1")
    module, datamodule = build(cfg)
    d_labels: list[torch.Tensor] = []
    g_labels: list[torch.Tensor] = []
    batches: list[torch.Tensor] = []
    module.discriminator.register_forward_hook(lambda m, inp, out: d_labels.append(inp[1].clone()))
    module.generator.register_forward_hook(lambda m, inp, out: g_labels.append(inp[1].clone()))
    module.on_train_batch_start = lambda batch, idx: batches.append(batch[1].clone())
    build_trainer(cfg, tmp_path).fit(module, datamodule=datamodule)
    real_labels = batches[0].chunk(2)
    for k in range(2):
        assert torch.equal(d_labels[2 * k], real_labels[k])
        assert torch.equal(d_labels[2 * k + 1], g_labels[k])
    assert torch.equal(d_labels[4], g_labels[2]) and len(d_labels) == 5
    assert not torch.equal(g_labels[0], g_labels[1])  # a fresh draw per fake batch


def test_fake_labels_are_uniform_and_sampling_cycles_through_the_classes(make_cfg):
    module, _ = build(make_cfg("data=digits", "model=dcgan_cond", "metrics=none"))
    counts = torch.bincount(module.sample_labels(100_000), minlength=10)
    assert counts.shape == (10,) and (counts - 10_000).abs().max() < 5 * 95  # 5 sigma of Binomial(1e5, 0.1)
    z = torch.randn(12, module.z_dim)
    expected = module.generator.eval()(z, torch.arange(12) % 10)
    torch.testing.assert_close(module.generate(z), expected, rtol=0, atol=0)
    assert module.num_classes == 10 and build(make_cfg())[0].sample_labels(4) is None


class RecordingRaGAN(RelativisticAverageLoss):
    """RaGAN that keeps what its generator loss was given."""

    def __init__(self) -> None:
        self.g_calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def g_loss(self, fake_logits, real_logits=None):
        self.g_calls.append((fake_logits, real_logits))
        return super().g_loss(fake_logits, real_logits)


def test_the_generator_step_of_a_relativistic_loss_gets_ds_logits_of_the_last_real_slice_with_its_labels(
    make_cfg, tmp_path
):
    """Conditional nets, n_critic 2: g_loss gets D's logits (with the slice's labels) for real slice 2,
    without a graph, and D's logits for G's fakes, through which G's gradient flows. After the one step D
    is as the G step saw it (the G step does not update D), so the logits are recomputed here."""
    cfg = make_cfg("data=digits", "model=dcgan_cond", "metrics=none", "n_critic=2", "trainer.max_steps=1")
    module, datamodule = build(cfg)
    module.loss = RecordingRaGAN()
    batches: list[tuple[torch.Tensor, torch.Tensor]] = []
    g_inputs: list[tuple[torch.Tensor, torch.Tensor]] = []
    module.on_train_batch_start = lambda batch, idx: batches.append((batch[0].clone(), batch[1].clone()))
    module.generator.register_forward_hook(lambda m, inp, out: g_inputs.append((out.detach(), inp[1])))
    build_trainer(cfg, tmp_path).fit(module, datamodule=datamodule)
    ((fake_logits, real_logits),) = module.loss.g_calls
    x, y = batches[0]
    d = module.discriminator
    with torch.no_grad():
        torch.testing.assert_close(real_logits, d(x.chunk(2)[1], y.chunk(2)[1]), rtol=0, atol=0)
        fake, fake_labels = g_inputs[2]  # the G step's fakes (after one batch of fakes per D update)
        torch.testing.assert_close(fake_logits.detach(), d(fake, fake_labels), rtol=0, atol=0)
    assert not real_logits.requires_grad and fake_logits.requires_grad


def test_the_training_rng_stream_survives_its_checkpoint_form():
    """The global RNG states are swapped every step as the libraries return them and converted only for a
    checkpoint: the converted and restored state draws exactly what the original does (torch, numpy,
    python, including numpy's cached Gaussian)."""
    import random

    import numpy as np

    from ganlab.module import get_rng_state, loaded_rng_state, saved_rng_state, set_rng_state

    cpu = torch.device("cpu")
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in numpy's state
    state = get_rng_state(cpu)
    expected = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn(3))
    set_rng_state(loaded_rng_state(saved_rng_state(state)), cpu)
    got = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn(3))
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2] and np.array_equal(got[3], expected[3])
    saved = saved_rng_state(state)  # plain tensors and values: loadable with weights_only=True
    assert all(isinstance(t, torch.Tensor) for t in (saved["python"]["state"], saved["numpy"]["keys"]))


HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy")
# reads of tensors that stay on the host on a GPU too (no sync there), by the file that reads them
HOST_SIDE = {
    "torch/optim/optimizer.py": "Adam's step counter lives on the CPU (capturable=False)",
    "ganlab/data/base.py": "the sampler's batch indices are drawn on the CPU",
}


def test_a_training_step_that_logs_nothing_reads_nothing_on_the_host(make_cfg, monkeypatch):
    """On a GPU, reading a tensor's value on the host waits for the device (a sync): only logging steps may
    do it. Counted here on the CPU by wrapping the tensor's host-read methods around whole loop iterations
    (data, training step, callbacks) with a penalty, clipping, the progress bar and the sample/checkpoint
    callbacks on; ``scripts/gpu_check.sh`` checks the same on CUDA with ``torch.cuda.set_sync_debug_mode``."""
    from pytorch_lightning.loops.training_epoch_loop import _TrainingEpochLoop

    cfg = make_cfg(
        "trainer.max_steps=25",
        "trainer.log_every_n_steps=10",
        "penalty=gp",
        "clip_grad_norm.d=1.0",
        "trainer.enable_progress_bar=true",
        "sample_every=7",
        "callbacks.checkpoint.every=9",
    )
    module, datamodule = build(cfg)
    counting, reads = [False], []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if counting[0] and not any(caller.endswith(path) for path in HOST_SIDE):
                reads.append((module.g_steps, _name, f"{caller}:{sys._getframe(1).f_lineno}"))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    advance = _TrainingEpochLoop.advance

    def counted(loop, *args, **kwargs):
        step = module.g_steps + 1  # the step this iteration trains
        counting[0] = step % 10 != 0 and step % 7 != 0 and step % 9 != 0 and step != 25
        try:
            return advance(loop, *args, **kwargs)
        finally:
            counting[0] = False

    monkeypatch.setattr(_TrainingEpochLoop, "advance", counted)
    build_trainer(cfg, cfg.paths.output_dir).fit(module, datamodule=datamodule)
    assert module.g_steps == 25 and reads == [], reads[:8]
