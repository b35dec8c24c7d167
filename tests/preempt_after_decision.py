"""``python tests/preempt_after_decision.py OVERRIDES...``: ``python -m ganlab.train OVERRIDES...`` on two
processes, with two timings made certain that a real preemption meets only sometimes:

- rank 0 sends itself SIGTERM at the end of generator step ``STEP`` (environment, default 5), after the
  checkpoint callback's shared stop decision of that step: the window in which a signal from outside lands
  when it arrives while the step's checkpoint is being written;
- rank 0 takes ``CLOSE_S`` seconds (default 7) to close its trackers, as wandb can when it uploads: longer
  than the 5 s after which Lightning's observer of the other processes acts on their exit codes.

Lightning starts rank 1 by rerunning this script's command line, so both processes run it.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytorch_lightning as pl
import torch

import ganlab.train as train_module
from ganlab.cli import main

STEP, CLOSE_S = int(os.environ.get("STEP", "5")), float(os.environ.get("CLOSE_S", "7"))


class SigtermAfterDecision(pl.Callback):
    """Runs after the checkpoint callback's batch-end hook, so after the step's all-reduced decision."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.is_global_zero and pl_module.g_steps == STEP:
            os.kill(os.getpid(), signal.SIGTERM)


def build_trainer(*args, _original=train_module.build_trainer, **kwargs):
    trainer = _original(*args, **kwargs)
    trainer.callbacks.append(SigtermAfterDecision())
    return trainer


def close_trackers(*args, _original=train_module.close_trackers) -> None:
    if os.environ.get("LOCAL_RANK", "0") == "0":
        time.sleep(CLOSE_S)
    _original(*args)


if __name__ == "__main__":
    torch.set_num_threads(1)
    train_module.build_trainer = build_trainer
    train_module.close_trackers = close_trackers
    sys.argv[0] = os.path.abspath(__file__)
    sys.exit(main())
