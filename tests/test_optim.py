"""The optim group: each option builds one optimizer per network with its own settings (optim=sgd here;
every option trains in test_configs.py), and a combination torch refuses is a config error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganlab.config import ConfigError
from ganlab.train import build, build_trainer, train


@pytest.mark.parametrize(
    "overrides, expected_g, expected_d",
    [
        ([], (0.1, 0.0, False), (0.1, 0.0, False)),  # plain SGD by default
        (
            ["optim.g.momentum=0.9", "optim.g.nesterov=true", "optim.d.lr=0.05", "optim.d.momentum=0.5"],
            (0.1, 0.9, True),
            (0.05, 0.5, False),
        ),
    ],
    ids=["defaults", "per-network"],
)
def test_sgd_builds_one_sgd_per_network_with_its_settings(make_cfg, overrides, expected_g, expected_d):
    module, _ = build(make_cfg("optim=sgd", *overrides))
    opt_g, opt_d = module.configure_optimizers()
    for opt, net, (lr, momentum, nesterov) in (
        (opt_g, module.generator, expected_g),
        (opt_d, module.discriminator, expected_d),
    ):
        assert type(opt) is torch.optim.SGD
        (group,) = opt.param_groups
        assert (group["lr"], group["momentum"], group["nesterov"]) == (lr, momentum, nesterov)
        assert group["dampening"] == 0 and group["weight_decay"] == 0
        assert [id(p) for p in group["params"]] == [id(p) for p in net.parameters()]


def test_sgd_trains_a_few_steps_and_moves_both_networks(make_cfg, tmp_path):
    cfg = make_cfg("optim=sgd", "trainer.max_steps=3")
    module, datamodule = build(cfg)
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    build_trainer(cfg, tmp_path).fit(module, datamodule=datamodule)
    assert module.g_steps == 3 and module.d_steps == 3
    for net in ("generator", "discriminator"):
        params = [(n, p) for n, p in module.named_parameters() if n.startswith(net)]
        assert all(torch.isfinite(p).all() for _, p in params), net
        assert any(not torch.equal(before[n], p) for n, p in params), net


def test_nesterov_without_momentum_is_refused_before_anything_is_written(make_cfg):
    cfg = make_cfg("optim=sgd", "optim.g.nesterov=true")
    with pytest.raises(ConfigError) as info:
        train(cfg)
    assert not Path(cfg.paths.output_dir).exists()
    message = str(info.value)
    assert message.startswith("optim.g cannot be built from optim.g.lr=0.1, optim.g.momentum=0.0, ")
    assert "optim.g.nesterov=True" in message and "Nesterov momentum requires a momentum" in message
