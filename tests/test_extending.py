"""A user's own components, in the user's own package and config folder, with no edit to ganlab: a loss,
a penalty, two networks, a dataset and a callback, chosen through ``hydra.searchpath`` and ``_target_``
exactly as the README's "Your own components, in your own package" shows; the run's record names them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

USER_CODE = '''
"""A user's own GAN components, outside ganlab."""
import json
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from ganlab.data.base import GANDataModule
from ganlab.losses import AdversarialLoss
from ganlab.penalties import Penalty


class MarginHinge(AdversarialLoss):
    """Hinge loss with a margin m: L_D = E relu(m - l_real) + E relu(m + l_fake), L_G = -E l_fake."""

    def __init__(self, margin: float = 1.0) -> None:
        self.margin = float(margin)

    def d_loss(self, real_logits, fake_logits):
        return F.relu(self.margin - real_logits).mean() + F.relu(self.margin + fake_logits).mean()

    def g_loss(self, fake_logits, real_logits=None):
        return -fake_logits.mean()


class Drift(Penalty):
    """Logit drift penalty E l_real^2 (Karras et al. 2018)."""

    def value(self, critic, real, fake, noise=None, grad_scale=None):
        return critic(real).pow(2).mean()


class LinearG(nn.Module):
    def __init__(self, z_dim: int, data_shape: tuple) -> None:
        super().__init__()
        self.z_dim, self.data_shape = z_dim, tuple(data_shape)
        self.net = nn.Linear(z_dim, int(torch.tensor(data_shape).prod()))

    def forward(self, z):
        return self.net(z).view(len(z), *self.data_shape)


class LinearD(nn.Module):
    def __init__(self, data_shape: tuple) -> None:
        super().__init__()
        self.net = nn.Linear(int(torch.tensor(data_shape).prod()), 1)

    def forward(self, x):
        return self.net(x.flatten(1)).squeeze(1)


class Line(GANDataModule):
    """Points on the segment y = 2x, x in [-1, 1]."""

    shape = (2,)

    def __init__(self, n: int = 256, seed: int = 0, **loader) -> None:
        super().__init__(**loader)
        self.n, self.seed = int(n), int(seed)

    def load(self):
        x = torch.rand(self.n, 1, generator=torch.Generator().manual_seed(self.seed)) * 2 - 1
        return torch.cat([x, 2 * x], dim=1), torch.zeros(self.n, dtype=torch.long)


class StepLog(pl.Callback):
    """Writes the generator steps it saw at the end of training."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer, pl_module):
        self.path.write_text(json.dumps({"g_steps": pl_module.g_steps}))
'''

USER_CONFIGS = {
    "loss/margin_hinge.yaml": """
        _target_: mypkg.MarginHinge
        margin: 0.5
    """,
    "penalty/drift.yaml": """
        drift:
          _target_: mypkg.Drift
          weight: 0.001
    """,
    "model/linear.yaml": """
        z_dim: 4
        generator:
          _target_: mypkg.LinearG
          z_dim: ${model.z_dim}
        discriminator:
          _target_: mypkg.LinearD
    """,
    "data/line.yaml": """
        _target_: mypkg.Line
        n: 256
        seed: ${seed}
        batch_size: 32
    """,
}


@pytest.fixture(scope="module")
def user_project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "mypkg").mkdir()
    (root / "mypkg" / "__init__.py").write_text(USER_CODE)
    for name, text in USER_CONFIGS.items():
        path = root / "myconf" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "PYTHONPATH": str(root)}
    common = ["logger=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ganlab.train",
            *common,
            f"hydra.searchpath=[file://{root / 'myconf'}]",
            *args,
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_own_loss_penalty_nets_data_and_callback_train_and_are_recorded(user_project):
    out = user_project / "outputs" / "mine"
    proc = run(
        user_project,
        "loss=margin_hinge",
        "penalty=[gp,drift]",
        "model=linear",
        "data=line",
        "metrics=none",
        "trainer.max_steps=4",
        "trainer.log_every_n_steps=1",
        "+callbacks.steplog._target_=mypkg.StepLog",
        f"+callbacks.steplog.path={out}/steplog.json",
        f"hydra.run.dir={out}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["g_steps"] == 4
    assert json.loads((out / "steplog.json").read_text()) == {"g_steps": 4}
    assert summary["choices"]["loss"] == "margin_hinge" and summary["choices"]["model"] == "linear"
    assert summary["choices"]["penalty"] == ["gp", "drift"] and summary["choices"]["data"] == "line"
    targets = summary["targets"]
    assert targets["loss"] == "mypkg.MarginHinge" and targets["penalty.drift"] == "mypkg.Drift"
    assert targets["penalty.gp"] == "ganlab.penalties.GradientPenalty"
    assert targets["model.generator"] == "mypkg.LinearG" and targets["data"] == "mypkg.Line"
    assert targets["callbacks.steplog"] == "mypkg.StepLog"
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["ganlab"]["config"]["loss"]["margin"] == 0.5
    rows = (out / "metrics.csv").read_text().splitlines()
    assert "penalty/drift" in rows[0] and "penalty/gp" in rows[0]


def test_an_overridden_target_is_recorded_as_the_choice(user_project):
    out = user_project / "outputs" / "target"
    proc = run(
        user_project,
        "loss._target_=mypkg.MarginHinge",
        "+loss.margin=2.0",
        "~loss.real_label",
        "trainer.max_steps=2",
        "model.generator.width=8",
        "model.discriminator.width=8",
        "data.n_train=512",
        "data.batch_size=16",
        "metrics=none",
        f"hydra.run.dir={out}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["choices"]["loss"] == "mypkg.MarginHinge" == summary["targets"]["loss"]
    assert summary["choices"]["model"] == "mlp"  # untouched groups keep their option's name
