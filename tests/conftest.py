"""Shared fixtures: configs composed with Hydra's compose API (see cfgtools.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from cfgtools import compose_cfg

# One thread: the tiny networks of the tests run several times faster than with two threads that fight
# over a shared machine, and every number becomes bit-reproducible whatever the machine's core count.
torch.set_num_threads(1)


@pytest.fixture
def make_cfg(tmp_path):
    def make(*overrides: str, tiny: bool = True, run_dir: Path | None = None) -> DictConfig:
        return compose_cfg(list(overrides), run_dir or tmp_path / "run", tiny)

    yield make
    GlobalHydra.instance().clear()
