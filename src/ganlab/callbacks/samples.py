"""Sample pictures (and, for sequences, sample text) from fixed noise, every ``every`` generator steps and
at the end of training."""

from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl
import torch

from ganlab.callbacks.trackers import log_image, log_text
from ganlab.data.vocabulary import Vocabulary
from ganlab.plotting import save_samples


class SampleImages(pl.Callback):
    """Writes ``<dirpath>/step_<g_steps>.png`` and ``<dirpath>/final.png`` and logs them as ``samples``.

    The same noise vectors (drawn from ``seed``) are used every time, so that successive pictures show the
    generator changing, not the noise: ``n`` images in a grid, or for vector data of any length ``n_points``
    generated points over as many real ones (a histogram, a scatter plot or two projections:
    :func:`ganlab.plotting.vector_figure`). Sequence data (a data module with a ``vocabulary``) gets the
    per-position symbol frequencies of ``n_points`` generated and as many real sequences
    (:func:`ganlab.plotting.sequence_figure`), and beside each picture a text file (``.txt``) of the first
    ``n`` generated sequences decoded, one per line, logged as ``samples_text``.
    """

    def __init__(
        self, dirpath: str | Path, every: int = 500, n: int = 64, n_points: int = 2500, seed: int = 0
    ) -> None:
        if int(every) < 0:
            raise ValueError(f"SampleImages: every must be >= 0 (0: only at the end), got {every}")
        self.dirpath = Path(dirpath)
        self.every, self.n, self.n_points, self.seed = int(every), int(n), int(n_points), int(seed)
        self.z: torch.Tensor | None = None
        self.real: torch.Tensor | None = None
        self.last_path: Path | None = None
        self.logged_step: int | None = None
        self.vocabulary: Vocabulary | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module) -> None:
        datamodule = trainer.datamodule
        self.vocabulary = datamodule.vocabulary
        points = len(datamodule.shape) < 3  # vectors and sequences: many samples over as many real ones
        g = torch.Generator().manual_seed(self.seed)
        self.z = torch.randn(self.n_points if points else self.n, pl_module.z_dim, generator=g)
        self.real = datamodule.real_sample(self.n_points) if points else None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.every and pl_module.g_steps % self.every == 0:
            self.draw(trainer, pl_module, f"step_{pl_module.g_steps:07d}.png")

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        # a run that ends on a periodic step has that step's picture in the trackers already: once per step
        self.draw(trainer, pl_module, "final.png", log=self.logged_step != pl_module.g_steps)

    def draw(self, trainer: pl.Trainer, pl_module, name: str, log: bool = True) -> None:
        pl_module.check_weights()  # a diverged G is reported as such, not drawn (on every process alike)
        if not trainer.is_global_zero:
            return
        fake = pl_module.generate(self.z)
        path = self.dirpath / name
        symbols = self.vocabulary.symbols if self.vocabulary is not None else None
        image = save_samples(
            path, fake, self.real, title=f"generator step {pl_module.g_steps}", symbols=symbols
        )
        text = self.write_text(path.with_suffix(".txt"), fake)
        if log:
            log_image(trainer, "samples", image, step=pl_module.g_steps)
            if text is not None:
                log_text(trainer, "samples_text", text, step=pl_module.g_steps)
            self.logged_step = pl_module.g_steps
        self.last_path = path

    def write_text(self, path: Path, fake: torch.Tensor) -> str | None:
        """For sequence data, the first ``n`` samples decoded (pads dropped), one per line, written to
        ``path``; ``None`` for any other data."""
        if self.vocabulary is None:
            return None
        text = "".join(f"{line}\n" for line in self.vocabulary.decode(fake[: self.n]))
        path.write_text(text)
        return text

    def summary_fields(self, run_dir: Path) -> dict[str, str]:
        """``samples``: the last picture, relative to the run folder (summary.json)."""
        if self.last_path is None or not self.last_path.exists():
            return {}
        return {"samples": os.path.relpath(self.last_path, run_dir)}
