"""``python -m ganlab.sample ckpt=PATH n=N out=FILE [seed=S] [batch_size=B] [ema=...] [label=...]
[interpolate=K]``: draw samples from a checkpoint.

``out`` ending in ``.npy`` holds the raw generator outputs (``N x D`` for vector data such as ring8's
``N x 2``; ``N x C x H x W`` in [-1, 1] for images; ``N x A x L`` symbol probabilities or one-hot samples
for sequences); ``.png`` is a picture: a grid of images, or for vector data the samples over real data
drawn from the run's own data config (a histogram for 1-D data, a scatter plot for 2-D, two projections for
more dimensions: :func:`ganlab.plotting.vector_figure`), or for sequences their per-position symbol
frequencies over the real ones' (:func:`ganlab.plotting.sequence_figure`). A checkpoint of sequence data
also writes the samples decoded with the vocabulary it holds (the most probable symbol per position, pad
symbols dropped): ``.fasta`` / ``.fa`` as FASTA records ``>sample_<i>``, ``.txt`` one sequence per line.

- ``ema``: a checkpoint of a run with ``ema=on`` holds an averaged generator, which is used by default;
  ``ema=false`` takes the raw generator, ``ema=true`` insists on the average (an error without one).
- ``label`` (class-conditional checkpoints only): ``label=K`` draws every sample of class K;
  ``label=grid`` draws ``n`` samples of each class, one row per class. Without it the labels cycle
  through the classes, ``0, 1, ..., K-1, 0, ...``.
- ``interpolate=K``: K rows of ``n`` images each, row ``r`` the spherical interpolation (:func:`slerp`)
  from ``z0_r`` to ``z1_r``, two noise vectors drawn with ``seed`` (all ``z0`` first, then all ``z1``); its
  first and last images are ``G(z0_r)`` and ``G(z1_r)``. A conditional generator keeps one label per row
  (``label=K``, or class ``r mod K``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from ganlab.callbacks.checkpoint import CheckpointError, load_checkpoint
from ganlab.callbacks.ema import CHECKPOINT_KEY as EMA_KEY
from ganlab.data.vocabulary import Vocabulary
from ganlab.nets import build_net, is_conditional, run
from ganlab.plotting import save_samples

USAGE = (
    "usage: python -m ganlab.sample ckpt=PATH n=N out=FILE.npy|FILE.png|FILE.fasta|FILE.txt [seed=0] "
    "[batch_size=500] [ema=true|false] [label=K|grid] [interpolate=ROWS]"
)
REQUIRED = ("ckpt", "n", "out")
DEFAULTS: dict[str, Any] = {
    "ckpt": None,
    "n": None,
    "out": None,
    "seed": 0,
    "batch_size": 500,
    "ema": None,
    "label": None,
    "interpolate": None,
}


def fasta(sequences: list[str]) -> str:
    """FASTA records ``>sample_<i>`` (0-based), one sequence line each."""
    return "".join(f">sample_{i}\n{text}\n" for i, text in enumerate(sequences))


def lines(sequences: list[str]) -> str:
    """One sequence per line."""
    return "".join(f"{text}\n" for text in sequences)


TEXT_FORMATS = {".fasta": fasta, ".fa": fasta, ".txt": lines}  # decoded sequences
SUFFIXES = (".npy", ".png", *TEXT_FORMATS)


class SampleError(ValueError):
    """Bad arguments or an unreadable checkpoint."""


def generator_weights(ckpt: dict[str, Any], ema: bool | None = None) -> dict[str, Tensor]:
    """The averaged generator's state dict when the checkpoint has one and ``ema`` is not ``False``, else
    the trained generator's; ``ema=True`` without an average is an error."""
    averaged = ckpt.get(EMA_KEY)
    if ema and averaged is None:
        raise SampleError("ema=true, but the checkpoint holds no averaged generator (its run had ema: null)")
    if averaged is not None and ema is not False:
        return averaged["state_dict"]
    prefix = "generator."
    return {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}


def load_generator(ckpt: dict[str, Any], ema: bool | None = None) -> tuple[nn.Module, DictConfig]:
    """The generator of a checkpoint (averaged by default, see :func:`generator_weights`), in eval mode,
    and the run's config."""
    state = ckpt["ganlab"]
    cfg = OmegaConf.create(state["config"])
    generator = build_net(cfg.model.generator, tuple(state["data_shape"]), state.get("num_classes"))
    generator.load_state_dict(generator_weights(ckpt, ema))
    return generator.eval(), cfg


def checkpoint_vocabulary(ckpt: dict[str, Any], cfg: DictConfig) -> Vocabulary | None:
    """The vocabulary of a checkpoint of sequence data (Lightning saves the data module's ``state_dict``
    under its class's qualified name), ``None`` for other data."""
    state = ckpt.get(get_class(cfg.data._target_).__qualname__)
    saved = state.get("vocabulary") if isinstance(state, dict) else None
    return Vocabulary.from_dict(saved) if saved is not None else None


def noise(n: int, z_dim: int, seed: int) -> Tensor:
    """``(n, z_dim)`` standard normal noise drawn with ``seed``."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def draw(generator: nn.Module, n: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """``n`` samples from noise drawn with ``seed``, in batches; a conditional generator gets the labels
    ``0, 1, ..., K-1, 0, ...``."""
    labels = class_labels(check_label(generator, None), None, n, 1)
    return generate(generator, noise(n, generator.z_dim, seed), labels, batch_size)


@torch.no_grad()
def generate(generator: nn.Module, z: Tensor, labels: Tensor | None, batch_size: int = 500) -> Tensor:
    """``G(z)`` (or ``G(z, labels)``) in batches of ``batch_size``."""
    chunks = z.split(batch_size)
    label_chunks = labels.split(batch_size) if labels is not None else [None] * len(chunks)
    return torch.cat([run(generator, chunk, y) for chunk, y in zip(chunks, label_chunks, strict=True)])


def slerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """Spherical linear interpolation (Shoemake 1985; White 2016, "Sampling Generative Networks", for GAN
    latents): ``sin((1 - t) W) / sin W z0 + sin(t W) / sin W z1`` with ``cos W = <z0, z1> / (|z0| |z1|)``,
    which keeps the norm typical of Gaussian noise along the path where a straight line would shrink it.
    ``z0, z1``: ``(R, D)``; ``t``: ``(S,)`` in [0, 1]; returns ``(R, S, D)``, exactly ``z0`` at ``t = 0``
    and ``z1`` at ``t = 1``. Nearly parallel pairs (``sin W < 1e-6``) fall back to linear interpolation."""
    cos = torch.nn.functional.cosine_similarity(z0, z1, dim=1).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)[:, None]  # (R, 1)
    t = t[None, :]  # (1, S)
    sin = torch.sin(omega)
    parallel = sin < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    w0 = torch.where(parallel, 1.0 - t, torch.sin((1.0 - t) * omega) / safe)
    w1 = torch.where(parallel, t, torch.sin(t * omega) / safe)
    return w0[..., None] * z0[:, None, :] + w1[..., None] * z1[:, None, :]


def interpolation_latents(z_dim: int, rows: int, steps: int, seed: int = 0) -> Tensor:
    """``(rows * steps, z_dim)`` noise: row ``r`` goes from ``z0_r`` to ``z1_r`` in ``steps`` (:func:`slerp`),
    with ``z0 = randn(rows)``, then ``z1 = randn(rows)`` drawn with ``seed``."""
    z = noise(2 * rows, z_dim, seed)
    return slerp(z[:rows], z[rows:], torch.linspace(0.0, 1.0, steps)).reshape(rows * steps, z_dim)


def check_label(generator: nn.Module, label: int | str | None) -> int | None:
    """The generator's number of classes (``None``: unconditional), once ``label`` is checked against it."""
    if not is_conditional(generator):
        if label is not None:
            raise SampleError(f"label={label} needs a class-conditional checkpoint, not an unconditional one")
        return None
    k = int(generator.num_classes)
    if isinstance(label, int) and not 0 <= label < k:
        raise SampleError(f"label={label} is out of range: the checkpoint has classes 0..{k - 1}")
    return k


def class_labels(num_classes: int | None, label: int | str | None, groups: int, repeat: int) -> Tensor | None:
    """``groups`` runs of ``repeat`` equal labels: all ``label`` when it is a class index, else group ``g``
    has class ``g mod num_classes``; ``None`` for an unconditional generator."""
    if num_classes is None:
        return None
    per_group = torch.full((groups,), label) if isinstance(label, int) else torch.arange(groups) % num_classes
    return per_group.repeat_interleave(repeat)


def inputs(
    generator: nn.Module, n: int, seed: int, label: int | str | None, interpolate: int | None
) -> tuple[Tensor, Tensor | None, int | None]:
    """Noise, labels and images per grid row (``None``: a square grid) of the picture asked for."""
    k = check_label(generator, label)
    if interpolate is not None:
        if label == "grid":
            raise SampleError("interpolate= takes label=K (one class for all rows) or no label, not grid")
        z = interpolation_latents(generator.z_dim, interpolate, n, seed)
        return z, class_labels(k, label, interpolate, n), n
    groups, repeat, nrow = (k, n, n) if label == "grid" else (n, 1, None)
    return noise(groups * repeat, generator.z_dim, seed), class_labels(k, label, groups, repeat), nrow


def parse_args(argv: list[str]) -> dict[str, Any]:
    bad = [a for a in argv if "=" not in a or a.split("=", 1)[0] not in DEFAULTS]
    if bad:
        raise SampleError(f"unknown argument(s) {bad}; valid keys: {list(DEFAULTS)}. {USAGE}")
    args = {**DEFAULTS, **OmegaConf.to_container(OmegaConf.from_dotlist(argv))}
    missing = [k for k in REQUIRED if args[k] is None]
    if missing:
        raise SampleError(f"missing {missing}. {USAGE}")
    optional = [key for key in ("interpolate",) if args[key] is not None]
    for key in ("n", "batch_size", *optional):
        if not _positive_int(args[key]):
            raise SampleError(f"{key}={args[key]!r} is invalid: it must be an integer >= 1")
    if optional and args["n"] < 2:
        raise SampleError(f"n={args['n']} is invalid with interpolate=: it is the images per row, at least 2")
    if not (args["ema"] is None or isinstance(args["ema"], bool)):
        raise SampleError(f"ema={args['ema']!r} is invalid: true or false")
    label = args["label"]
    if label is not None and label != "grid" and not _class_index(label):
        raise SampleError(f"label={label!r} is invalid: a class index >= 0 or 'grid'")
    if Path(str(args["out"])).suffix not in SUFFIXES:
        raise SampleError(f"out={args['out']!r} must end in one of {list(SUFFIXES)}")
    return args


def _class_index(value: Any) -> bool:
    """An integer >= 0 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive_int(value: Any) -> bool:
    return _class_index(value) and value >= 1


def sample(
    ckpt: str,
    n: int,
    out: str,
    seed: int = 0,
    batch_size: int = 500,
    ema: bool | None = None,
    label: int | str | None = None,
    interpolate: int | None = None,
) -> Path:
    """Write the samples of the checkpoint ``ckpt`` asked for (module docstring) to ``out`` (.npy, .png,
    .fasta, .fa or .txt); return the path."""
    checkpoint = load_checkpoint(ckpt)
    generator, cfg = load_generator(checkpoint, ema)
    vocabulary = checkpoint_vocabulary(checkpoint, cfg)
    out_path = Path(out)
    if out_path.suffix in TEXT_FORMATS and vocabulary is None:
        raise SampleError(
            f"out={out} writes decoded sequences, but the checkpoint's data ({cfg.data._target_}) is not "
            f"sequence data (it holds no vocabulary). Valid for it: out=FILE.npy or FILE.png"
        )
    z, labels, nrow = inputs(generator, n, seed, label, interpolate)
    fake = generate(generator, z, labels, batch_size)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path.suffix == ".npy":
        np.save(out_path, fake.numpy())
    elif out_path.suffix in TEXT_FORMATS:
        out_path.write_text(TEXT_FORMATS[out_path.suffix](vocabulary.decode(fake)))
    else:
        real = instantiate(cfg.data).real_sample(2500) if fake.dim() in (2, 3) else None
        symbols = vocabulary.symbols if vocabulary is not None else None
        title = f"{len(fake)} samples of {Path(ckpt).name}"
        save_samples(out_path, fake, real, title=title, nrow=nrow, symbols=symbols)
    return out_path


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        path = sample(**args)
    except (SampleError, CheckpointError) as exc:
        print(f"ganlab.sample: {exc}", file=sys.stderr)
        return 2
    print(f"wrote samples to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
