"""``compile=true``: G and D compiled in place (checkpoint keys unchanged), D left eager when a penalty
needs a double backward; a compiled run trains, checkpoints and resumes in either direction."""

from __future__ import annotations

import logging

import pytest
import torch

from ganlab.train import build, train
from test_resume import SMALL, load


def compiled(net: torch.nn.Module) -> bool:
    """Whether ``nn.Module.compile`` was called on ``net`` (it compiles lazily, at the first forward)."""
    return net._compiled_call_impl is not None


@pytest.mark.parametrize(
    "penalty, d_compiled", [("none", True), ("r1", False), ("[gp,r2]", False), ("dragan", False)]
)
def test_compile_compiles_g_and_d_unless_a_penalty_needs_a_double_backward(
    make_cfg, caplog, penalty, d_compiled
):
    with caplog.at_level(logging.INFO, logger="ganlab"):
        module, _ = build(make_cfg("compile=true", f"penalty={penalty}"))
    assert compiled(module.generator) and compiled(module.discriminator) == d_compiled
    said = [r.getMessage() for r in caplog.records if "discriminator stays eager" in r.getMessage()]
    assert len(said) == (0 if d_compiled else 1)
    if said:
        assert all(f"penalty.{name}" in said[0] for name in penalty.strip("[]").split(","))
    plain, _ = build(make_cfg(f"penalty={penalty}"))
    assert not compiled(plain.generator) and not compiled(plain.discriminator)


@pytest.mark.slow  # about 25-30 s of compilation on CPU
def test_a_compiled_run_trains_and_its_checkpoints_resume_compiled_or_not(make_cfg, tmp_path):
    """Eager 4 steps is the reference. Compiled 2 steps, resumed eager to 4; eager 2 steps, resumed compiled
    to 4: same checkpoint keys, and weights equal to the eager run's up to the float rounding of the
    compiled kernels (inductor fuses and reorders operations)."""
    args = ["loss=hinge", *SMALL]
    assert train(make_cfg(*args, "trainer.max_steps=4", run_dir=tmp_path / "eager"))["status"] == "completed"
    for name, first, second in (("a", "true", "false"), ("b", "false", "true")):
        run = tmp_path / name
        one = train(make_cfg(*args, f"compile={first}", "trainer.max_steps=2", run_dir=run))
        two = train(make_cfg(*args, f"compile={second}", "trainer.max_steps=4", run_dir=run))
        assert one["status"] == two["status"] == "completed" and two["g_steps"] == 4, two["error"]
        reference, resumed = load(tmp_path / "eager")["state_dict"], load(run)["state_dict"]
        assert list(resumed) == list(reference)  # e.g. generator.net.0.weight, no _orig_mod
        for key in reference:
            torch.testing.assert_close(resumed[key], reference[key], rtol=1e-5, atol=1e-6, msg=key)
