"""Host-device synchronisations in ganlab's training steps on CUDA: ``python scripts/sync_check.py``.

Trains a few hundred generator steps on the GPU (dcgan on digits with its data on the device, and an mlp on
grid25 with a gradient penalty and clipping) with ``torch.cuda.set_sync_debug_mode("warn")`` switched on
around every loop iteration that is not a logging, sample-picture or checkpoint step (data, training step,
callbacks), and prints each synchronising call it caught with where it came from. The promise (README,
Speed): none. ``tests/test_module.py`` checks the same on the CPU by counting host reads of tensors.
"""

from __future__ import annotations

import sys
import tempfile
import traceback
import warnings
from collections import Counter
from pathlib import Path

CASES = {
    "dcgan_digits": ["data=digits", "model=dcgan", "metrics=none", "data.in_memory=true"],
    "mlp_gp_clip": ["data=grid25", "model=mlp", "penalty=gp", "clip_grad_norm.d=1.0", "metrics=none"],
}
STEPS, LOG_EVERY, SAMPLE_EVERY, CKPT_EVERY = 200, 50, 70, 90
TRAINER = "trainer=gpu"


def check(name: str, overrides: list[str]) -> int:
    import torch
    from pytorch_lightning.loops.training_epoch_loop import _TrainingEpochLoop

    sys.path.insert(0, str(Path(__file__).parent))
    from bench import compose
    from ganlab.train import train

    overrides = [
        *overrides,
        TRAINER,
        "logger=none",
        f"trainer.max_steps={STEPS}",
        f"trainer.log_every_n_steps={LOG_EVERY}",
        f"sample_every={SAMPLE_EVERY}",
        f"callbacks.checkpoint.every={CKPT_EVERY}",
        "trainer.enable_progress_bar=true",
    ]
    caught: Counter[str] = Counter()
    advance = _TrainingEpochLoop.advance

    def watched(loop, *args, **kwargs):
        step = loop.trainer.lightning_module.g_steps + 1  # the generator step this iteration trains
        quiet = step % LOG_EVERY and step % SAMPLE_EVERY and step % CKPT_EVERY and step != STEPS
        if not quiet:
            return advance(loop, *args, **kwargs)
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                return advance(loop, *args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode(0)
                for record in records:
                    if "synchroniz" in str(record.message):
                        caught[f"{record.filename}:{record.lineno}: {record.message}"] += 1

    _TrainingEpochLoop.advance = watched
    try:
        with tempfile.TemporaryDirectory() as tmp:
            summary = train(compose(overrides, Path(tmp) / "run"), overrides)
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        _TrainingEpochLoop.advance = advance
    print(
        f"{name}: {summary['status']}, {summary['g_steps']} steps, {sum(caught.values())} synchronising calls"
    )
    for where, n in caught.most_common():
        print(f"   {n:5d}x {where}")
    return int(bool(caught) or summary["status"] != "completed")


def main() -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("sync_check: no CUDA device here; run it on a GPU machine (scripts/gpu_check.sh)")
    sys.exit(max(check(name, overrides) for name, overrides in CASES.items()))


if __name__ == "__main__":
    main()
