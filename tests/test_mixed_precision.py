"""Mixed precision (``trainer.precision``): bf16-mixed trains every penalty and losses on CPU with float32
losses, finite, and resumes bit for bit; the float16 path (autocast + gradient scaler) trains through
Lightning's MixedPrecision plugin with a CPU scaler (Lightning itself turns ``16-mixed`` on CPU into
bf16, which ganlab refuses: tests/test_validation.py); clipping and gradient norms under a scaler."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.plugins.precision import MixedPrecision, Precision

from ganlab.module import grad_norm
from ganlab.train import build, train
from test_resume import SMALL, assert_same, future_state, load, training_rows

# one run per penalty, each with another loss, and losses without a penalty
BF16_CASES = [
    ["fix=wgan_gp"],  # Wasserstein + gp, n_critic 5
    ["loss=rpgan", "penalty=r1"],
    ["loss=hinge", "penalty=r2"],
    ["loss=non_saturating", "penalty=dragan"],
    ["loss=lsgan"],
    ["loss=ragan"],
]
# float16 autocast with a CPU gradient scaler: the 16-mixed path Lightning runs on a GPU
FLOAT16_CPU = [
    "trainer.precision=null",
    "+trainer.plugins=[{_target_:pytorch_lightning.plugins.precision.MixedPrecision,"
    "precision:16-mixed,device:cpu}]",
]


def logged(run: Path, key: str) -> list[float]:
    return [float(r[key]) for r in csv.DictReader(open(run / "metrics.csv")) if r.get(key)]


def bf16_exact(value: float) -> bool:
    return torch.tensor(value).to(torch.bfloat16).float().item() == value


def test_critic_logits_are_float32_under_bf16_autocast(make_cfg):
    module, _ = build(make_cfg())
    x = torch.randn(8, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module.discriminator(x).dtype == torch.bfloat16  # D itself computes in bf16
        assert module.critic(x).dtype == torch.float32
    assert module.critic(x).dtype == torch.float32
    assert module.double().critic(x.double()).dtype == torch.float64  # at least float32: 64-true stays 64


@pytest.mark.parametrize("case", BF16_CASES, ids=lambda c: "+".join(c))
def test_bf16_mixed_trains_finite_with_float32_losses_and_resumes_bit_exactly(make_cfg, tmp_path, case):
    args = ["trainer.precision=bf16-mixed", *case, *SMALL]
    full = train(make_cfg(*args, "trainer.max_steps=6", run_dir=tmp_path / "full"))
    train(make_cfg(*args, "trainer.max_steps=3", run_dir=tmp_path / "split"))
    second = train(make_cfg(*args, "trainer.max_steps=6", run_dir=tmp_path / "split"))
    assert full["status"] == second["status"] == "completed", full["error"]
    assert_same(future_state(load(tmp_path / "full")), future_state(load(tmp_path / "split")))
    assert training_rows(tmp_path / "split") == training_rows(tmp_path / "full")
    losses = logged(tmp_path / "full", "loss/d") + logged(tmp_path / "full", "loss/g")
    assert len(losses) == 12 and all(math.isfinite(v) for v in losses)
    # a loss reduced in bf16 would be a bf16 number; reduced in float32 from bf16 logits it almost never is
    assert sum(bf16_exact(v) for v in losses) <= 2, losses
    for name in [c.split("=")[1] for c in case if c.startswith("penalty=")]:
        assert all(math.isfinite(v) and v > 0 for v in logged(tmp_path / "full", f"penalty/{name}"))


def test_float16_with_a_gradient_scaler_trains_penalties_with_clipping_and_resumes_exactly(
    make_cfg, tmp_path
):
    """The scaler starts at 2^16; the penalties' double backward overflows float16 there, the scaler skips
    those updates and halves its scale (not a divergence), and training goes on with finite losses. The
    scaler's state is checkpointed, so the resume is exact."""
    args = [*FLOAT16_CPU, "penalty=[gp,r1]", "clip_grad_norm.d=1.0", "clip_grad_norm.g=1.0", *SMALL]
    full = train(make_cfg(*args, "trainer.max_steps=12", run_dir=tmp_path / "full"))
    train(make_cfg(*args, "trainer.max_steps=6", run_dir=tmp_path / "split"))
    second = train(make_cfg(*args, "trainer.max_steps=12", run_dir=tmp_path / "split"))
    assert full["status"] == second["status"] == "completed", full["error"]
    assert full["g_steps"] == 12
    ckpt_full, ckpt_split = load(tmp_path / "full"), load(tmp_path / "split")
    assert_same(future_state(ckpt_full), future_state(ckpt_split))
    assert_same(ckpt_full["MixedPrecision"], ckpt_split["MixedPrecision"])  # the scaler's state
    assert ckpt_full["MixedPrecision"]["scale"] < 2.0**16  # it did skip overflowing updates
    assert training_rows(tmp_path / "split") == training_rows(tmp_path / "full")
    run = tmp_path / "full"
    keys = ("loss/d", "loss/g", "penalty/gp", "penalty/r1")
    assert all(math.isfinite(v) for key in keys for v in logged(run, key))
    # the logged norms are unscaled: the scaler's 2^16 or 2^12 would show as norms in the thousands
    finite_norms = [v for v in logged(run, "grad_norm/D") if math.isfinite(v)]
    assert finite_norms and max(finite_norms) < 100


def _with_plugin(module, plugin: Precision) -> None:
    """Attach a stand-in trainer that holds only what ``GAN._clip`` and Lightning's ``clip_gradients``
    read, so that one gradient can be clipped with and without a gradient scaler."""
    module._trainer = SimpleNamespace(
        precision_plugin=plugin, gradient_clip_val=None, gradient_clip_algorithm=None
    )
    module._log_now = True


@pytest.mark.parametrize("max_norm", [None, 0.05])
def test_clip_under_a_gradient_scaler_logs_and_clips_the_unscaled_gradient(make_cfg, max_norm):
    """Gradients scaled by S = 2^10 (what the scaler leaves for opt.step() to unscale): the norm reported is
    the unscaled one, and the clipped gradients divided by S equal those clipped without a scaler."""
    module, _ = build(make_cfg())
    net = module.discriminator
    torch.manual_seed(0)
    plain = [torch.randn_like(p) for p in net.parameters()]
    scaled_plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**10))
    results = {}
    for name, plugin, factor in (("plain", Precision(), 1.0), ("scaled", scaled_plugin, 2.0**10)):
        _with_plugin(module, plugin)
        for p, g in zip(net.parameters(), plain, strict=True):
            p.grad = g * factor
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        norm = module._clip(opt, net, max_norm)
        results[name] = (norm, [p.grad / factor for p in net.parameters()])
    expected = torch.linalg.vector_norm(torch.stack([g.norm() for g in plain]))
    assert results["plain"][0].item() == pytest.approx(expected.item(), rel=1e-6)
    assert results["scaled"][0].item() == pytest.approx(expected.item(), rel=1e-6)
    for a, b in zip(results["plain"][1], results["scaled"][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)
    if max_norm is not None:  # the clipping did happen, to max_norm
        clipped = torch.linalg.vector_norm(torch.stack([g.norm() for g in results["scaled"][1]]))
        assert expected.item() > 10 * max_norm and clipped.item() == pytest.approx(max_norm, rel=1e-4)
    assert grad_norm(net).item() == pytest.approx(2.0**10 * (max_norm or expected.item()), rel=1e-4)


def test_a_penalty_that_overflows_under_the_scaler_is_skipped_not_a_divergence(make_cfg, tmp_path):
    """A scaler that starts far too high (2^30): the scaled inner backward of gp overflows float16, so the
    penalty is infinite; the scaler skips those updates and halves its scale until they fit, and the run
    goes on (a non-finite loss without a scaler stops it: tests/test_faults.py)."""
    scaler = "scaler:{_target_:torch.amp.GradScaler,device:cpu,init_scale:1073741824}"
    plugin = FLOAT16_CPU[1].replace("device:cpu}]", f"device:cpu,{scaler}}}]")
    summary = train(make_cfg(FLOAT16_CPU[0], plugin, "penalty=gp", "trainer.max_steps=16", *SMALL))
    assert summary["status"] == "completed", summary["error"]
    penalty = logged(tmp_path / "run", "penalty/gp")
    assert not math.isfinite(penalty[0]) and all(math.isfinite(v) for v in penalty[-4:]), penalty
    assert all(math.isfinite(v) for v in logged(tmp_path / "run", "loss/d"))
    assert load(tmp_path / "run")["MixedPrecision"]["scale"] < 2.0**16
