"""``python -m ganlab.sample ckpt=PATH n=N out=FILE [seed=S] [batch_size=B]``: draw samples from a checkpoint.

``out`` ending in ``.npy`` holds the raw generator outputs (``N x D`` for vector data such as ring8's
``N x 2``; ``N x C x H x W`` in [-1, 1] for images); ``.png`` is a picture (a grid of images, or for 2-D
data a scatter plot over real data drawn from the run's own data config).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ganlab.plotting import save_samples

USAGE = "usage: python -m ganlab.sample ckpt=PATH n=N out=FILE.npy|FILE.png [seed=0] [batch_size=500]"
DEFAULTS: dict[str, Any] = {"ckpt": None, "n": None, "out": None, "seed": 0, "batch_size": 500}
SUFFIXES = (".npy", ".png")


class SampleError(ValueError):
    """Bad arguments or an unreadable checkpoint."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A ganlab checkpoint as a dict; a clear error when it is missing, corrupt or not ganlab's."""
    path = Path(path)
    if not path.is_file():
        raise SampleError(f"checkpoint {str(path)!r} does not exist (expected a run's checkpoints/last.ckpt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SampleError(f"checkpoint {str(path)!r} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or "ganlab" not in ckpt or "state_dict" not in ckpt:
        raise SampleError(f"{str(path)!r} is not a ganlab checkpoint (no 'ganlab' and 'state_dict' entries)")
    return ckpt


def load_generator(ckpt: dict[str, Any]) -> tuple[nn.Module, DictConfig]:
    """The generator of a checkpoint, in eval mode, and the run's config."""
    cfg = OmegaConf.create(ckpt["ganlab"]["config"])
    generator = instantiate(cfg.model.generator, data_shape=tuple(ckpt["ganlab"]["data_shape"]))
    prefix = "generator."
    weights = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    generator.load_state_dict(weights)
    return generator.eval(), cfg


@torch.no_grad()
def draw(generator: nn.Module, n: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """``n`` samples from noise drawn with ``seed``, in batches."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator.z_dim, generator=g)
    return torch.cat([generator(chunk) for chunk in z.split(batch_size)])


def parse_args(argv: list[str]) -> dict[str, Any]:
    bad = [a for a in argv if "=" not in a or a.split("=", 1)[0] not in DEFAULTS]
    if bad:
        raise SampleError(f"unknown argument(s) {bad}; valid keys: {list(DEFAULTS)}. {USAGE}")
    args = {**DEFAULTS, **OmegaConf.to_container(OmegaConf.from_dotlist(argv))}
    missing = [k for k, v in args.items() if v is None]
    if missing:
        raise SampleError(f"missing {missing}. {USAGE}")
    for key in ("n", "batch_size"):
        if not isinstance(args[key], int) or isinstance(args[key], bool) or args[key] < 1:
            raise SampleError(f"{key}={args[key]!r} is invalid: it must be an integer >= 1")
    if Path(str(args["out"])).suffix not in SUFFIXES:
        raise SampleError(f"out={args['out']!r} must end in one of {list(SUFFIXES)}")
    return args


def sample(ckpt: str, n: int, out: str, seed: int = 0, batch_size: int = 500) -> Path:
    """Write ``n`` samples of the checkpoint ``ckpt`` to ``out`` (.npy or .png); return the path."""
    generator, cfg = load_generator(load_checkpoint(ckpt))
    fake = draw(generator, n, seed, batch_size)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path.suffix == ".npy":
        np.save(out_path, fake.numpy())
    else:
        real = instantiate(cfg.data).real_sample(2500) if fake.dim() == 2 else None
        save_samples(out_path, fake, real, title=f"{n} samples of {Path(ckpt).name}")
    return out_path


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        path = sample(**args)
    except SampleError as exc:
        print(f"ganlab.sample: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args['n']} samples to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
