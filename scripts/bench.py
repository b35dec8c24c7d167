"""ganlab's training step against a hand-written PyTorch loop, and the command line's response time.

    python scripts/bench.py                     # every case, CPU, one torch thread
    python scripts/bench.py --cases mlp_ns --repeats 5
    python scripts/bench.py --device cuda       # on a GPU machine
    python scripts/bench.py --device cuda --precision bf16-mixed --compile --loggers none

How it measures. Each measurement is a fresh process (one torch thread) that builds the case's config as
``python -m ganlab.train`` composes it and times one whole training of N generator steps: ganlab's
``train(cfg)`` (default callbacks: sample pictures, evaluation, checkpoints; the logger named), or a loop
written by hand on the same networks, data tensor, loss, optimizers and batch (drawn by ``randperm``, as
anyone would write it). The steady-state time per generator step is the difference of two lengths,
``(t(N2) - t(N1)) / (N2 - N1)``, so that set-up, the first-step warm-up and the final evaluation cancel.
The measurements of a case are interleaved (hand, ganlab none, ganlab default logger, ...) and repeated;
the median is printed, with the rate ratio ``hand ms / ganlab ms`` (1.0: ganlab costs nothing; the
targets are >= 0.95 for dcgan and wgan_gp, >= 0.90 for mlp) and the default logger's cost against none.

``--precision bf16-mixed`` (or ``16-mixed``, GPUs only) and ``--compile`` set ``trainer.precision`` and
``compile=true`` for ganlab and do the same by hand in the loop: autocast, a gradient scaler for float16 (with
the penalty's inner gradient scaled and unscaled as in PyTorch's AMP example), ``module.compile()`` on G and
on D (D only without a gradient penalty, ganlab's rule). Compilation happens in both run lengths, so it
cancels from the time per step like the rest of the set-up (a first, unmeasured run of each case fills
inductor's on-disk cache, which would otherwise favour whichever length runs second). ``--loggers none``
skips the tracker's runs. ``--floor`` (with ``--interleaved``) also times Lightning's own loop around the
hand step (an empty module, no callbacks or logger, the case's data module): the highest ratio any
framework built on Lightning's training loop can reach on this machine, against which to read ganlab's.

The command line: ``python -m ganlab.train --help`` and a config error (``optim.g.lr=-1``) against
``python -c "import torch"`` (the target: below 1.0).

On a shared, busy machine the ratios wander by several percent: repeat (``--repeats``) and read the
spread that is printed beside each median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {  # name -> (overrides, N1, N2)
    "mlp_ns": (["data=grid25", "model=mlp", "loss=non_saturating", "data.batch_size=256"], 40, 240),
    "dcgan_ns": (["data=digits", "model=dcgan", "loss=non_saturating", "data.batch_size=64"], 40, 240),
    "mlp_wgan_gp": (["data=grid25", "model=mlp", "fix=wgan_gp", "data.batch_size=256"], 20, 100),
    "resnet_hinge": (
        ["data=cifar10", "model=resnet", "loss=hinge", "data.batch_size=32", "metrics=none"],
        10,
        40,
    ),
}
LOGGERS = ("none", "wandb")


# the measured process -------------------------------------------------------------------------------------
def compose(overrides: list[str], run_dir: Path):
    """The config ``python -m ganlab.train`` would compose, with its Hydra runtime set (run name, tags)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from ganlab.paths import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        del cfg["hydra"]
    return cfg


def hand_loop(cfg, steps: int, device: str) -> None:
    """``steps`` generator steps of :func:`hand_steps`."""
    import torch

    loop = hand_steps(cfg, device)
    for _ in range(steps):
        next(loop)
    if device == "cuda":
        torch.cuda.synchronize()


def hand_steps(cfg, device: str) -> Iterator[None]:
    """The loop a researcher writes by hand, one generator step per ``next``: ganlab's nets, data, loss
    formula and optimizers, nothing else (no logging, no checks, no callbacks); in mixed precision,
    autocast and (float16) a scaler. Its nets are built from ``cfg`` on their own (another copy than a
    ganlab run's of the same config). Each step runs as in a process that never imported Lightning:
    without ``PYTORCH_NVML_BASED_CUDA_CHECK``, which Lightning's import sets and which, on a machine without
    a GPU, costs an NVML probe (~30 us) in every optimizer step."""
    import torch
    import torch.nn.functional as F

    from ganlab.build import build

    module, datamodule = build(cfg)  # compile=true: G (and D without a penalty) compiled by build()
    g, d = module.generator.to(device), module.discriminator.to(device)
    opt_g, opt_d = module.optim_g(g.parameters()), module.optim_d(d.parameters())
    precision = str(cfg.trainer.precision)
    autocast = torch.autocast(
        device,
        dtype=torch.bfloat16 if precision == "bf16-mixed" else torch.float16,
        enabled=precision != "32-true",
    )
    scaler = torch.amp.GradScaler(device, enabled=precision == "16-mixed")
    x = datamodule.train_set.x.to(device)
    if x.dtype == torch.uint8:
        x = x.float().div(127.5).sub(1.0)
    loss, n_critic, batch = cfg.loss._target_.rsplit(".", 1)[1], int(cfg.n_critic), int(cfg.data.batch_size)
    gp = cfg.penalty.get("gp")
    perm, at = torch.randperm(len(x), device=device), 0

    def d_loss(real_l: torch.Tensor, fake_l: torch.Tensor) -> torch.Tensor:
        if loss == "HingeLoss":
            return F.relu(1 - real_l).mean() + F.relu(1 + fake_l).mean()
        if loss == "WassersteinLoss":
            return fake_l.mean() - real_l.mean()
        return F.softplus(-real_l).mean() + F.softplus(fake_l).mean()

    def g_loss(fake_l: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_l).mean() if loss == "NonSaturatingLoss" else -fake_l.mean()

    def step() -> None:
        nonlocal perm, at
        for _ in range(n_critic):
            if at + batch > len(x):
                perm, at = torch.randperm(len(x), device=device), 0
            real, at = x[perm[at : at + batch]], at + batch
            with autocast:
                with torch.no_grad():
                    fake = g(torch.randn(batch, g.z_dim, device=device))
                total = d_loss(d(real).float(), d(fake).float())
                if gp is not None:
                    eps = torch.rand(batch, *[1] * (real.dim() - 1), device=device)
                    points = (eps * real + (1 - eps) * fake).float().requires_grad_(True)
                    out = d(points).float().sum()
                    if scaler.is_enabled():  # PyTorch's AMP example: grads of the scaled output, unscaled
                        factor = scaler.scale(torch.ones((), device=device)) / batch
                        (grad,) = torch.autograd.grad(out * factor, points, create_graph=True)
                        grad = grad / factor
                    else:
                        (grad,) = torch.autograd.grad(out, points, create_graph=True)
                    total = total + gp.weight * (grad.flatten(1).norm(dim=1) - gp.center).pow(2).mean()
            opt_d.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(opt_d)
            scaler.update()
        for p in d.parameters():
            p.requires_grad_(False)
        with autocast:
            out = g_loss(d(g(torch.randn(batch, g.z_dim, device=device))).float())
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(out).backward()
        scaler.step(opt_g)
        scaler.update()
        for p in d.parameters():
            p.requires_grad_(True)

    while True:  # in a process without Lightning, whose import sets this (an NVML probe per optimizer step)
        lightning_set = os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
        try:
            step()
        finally:
            if lightning_set is not None:
                os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = lightning_set
        yield


@contextmanager
def hand_before_each_step(hand: Iterator[None], name: str, device: str) -> Iterator[dict[str, list[float]]]:
    """While the block runs, each iteration of Lightning's training loop (data, training step, callbacks)
    is preceded by one step of ``hand``, and both are timed on their own (after a CUDA sync on a GPU):
    yields ``{"hand": [...], name: [...]}``, seconds per iteration, filled as the block trains."""
    import torch
    from pytorch_lightning.loops.training_epoch_loop import _TrainingEpochLoop

    def now() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    times: dict[str, list[float]] = {"hand": [], name: []}
    advance = _TrainingEpochLoop.advance

    def timed(loop, *args, **kwargs):
        t0 = now()
        next(hand)
        t1 = now()
        try:
            return advance(loop, *args, **kwargs)
        finally:
            times["hand"].append(t1 - t0)
            times[name].append(now() - t1)

    _TrainingEpochLoop.advance = timed
    try:
        yield times
    finally:
        _TrainingEpochLoop.advance = advance


def interleaved(cfg, overrides: list[str], device: str, skip: int = 20) -> dict[str, float]:
    """ganlab's run of ``cfg`` with one step of the hand loop before each of its loop iterations (data,
    training step, callbacks), each timed on its own: both see the same moment of the machine, which makes
    this the measure to trust on a shared, busy machine. The first ``skip`` steps (warm-up) and the last
    (whose callbacks save the final checkpoint: end-of-run work, like the final evaluation after it) are
    left out; logging steps count. Returns the mean ms per generator step of each."""
    from ganlab.train import train

    with hand_before_each_step(hand_steps(cfg, device), "ganlab", device) as times:
        summary = train(cfg, overrides)
    assert summary["status"] == "completed", summary.get("error")
    return {k: 1e3 * statistics.fmean(v[skip:-1]) for k, v in times.items()}


def lightning_floor(cfg, device: str, skip: int = 20) -> dict[str, float]:
    """What Lightning's loop alone costs: an empty manual-optimisation LightningModule whose training step
    is one step of the hand loop, fed by the case's own data module, with no callbacks, logger or
    checkpointing (one no-op optimizer step per training step, as Lightning counts steps by them), timed
    like :func:`interleaved` against a hand step before each iteration. No framework built on Lightning's
    loop reaches a higher ratio than this one."""
    import pytorch_lightning as pl
    import torch

    from ganlab.build import build
    from ganlab.train import cuda_probed_once

    inner, hand = hand_steps(cfg, device), hand_steps(cfg, device)
    _, datamodule = build(cfg)
    datamodule.batches_per_step = int(cfg.n_critic)

    class Floor(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.unused = torch.nn.Parameter(torch.zeros(()))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD([self.unused], lr=0.0)

        def training_step(self, batch, batch_idx: int) -> None:
            next(inner)
            self.optimizers().step()

    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        max_steps=int(cfg.trainer.max_steps),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with hand_before_each_step(hand, "floor", device) as times, cuda_probed_once(trainer):
        trainer.fit(Floor(), datamodule=datamodule)
    return {k: 1e3 * statistics.fmean(v[skip:-1]) for k, v in times.items()}


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from ganlab.train import train

    overrides = [*CASES[args.case][0], f"trainer.max_steps={args.steps}", f"logger={args.logger}"]
    overrides += [f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}"]
    overrides += [f"trainer.precision={args.precision}", f"compile={str(args.compile).lower()}"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose(overrides, Path(tmp) / "run")
        if args.what == "interleaved":
            print(json.dumps(interleaved(cfg, overrides, args.device)))
            return
        if args.what == "floor":
            print(json.dumps(lightning_floor(cfg, args.device)))
            return
        started = time.perf_counter()
        if args.what == "hand":
            hand_loop(cfg, args.steps, args.device)
        else:
            summary = train(cfg, overrides)
            assert summary["status"] == "completed", summary.get("error")
        print(json.dumps({"seconds": time.perf_counter() - started}))


# the driver -----------------------------------------------------------------------------------------------
def measure(
    case: str, what: str, logger: str, steps: int, opts: argparse.Namespace, data_env: dict[str, str]
) -> float:
    env = {**os.environ, **data_env, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    cmd = [sys.executable, __file__, "--worker", "--case", case, "--what", what, "--logger", logger]
    cmd += ["--steps", str(steps), "--device", opts.device, "--precision", opts.precision]
    cmd += ["--compile"] if opts.compile else []
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=data_env["BENCH_CWD"])
    if proc.returncode != 0:
        raise RuntimeError(f"{case}/{what}/{logger} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fake_cifar10(root: Path, n: int = 2048) -> None:
    """Random 32x32 images in CIFAR-10's pickle layout (the resnet case's "synthetic images")."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n // 5, 3 * 32 * 32), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": rng.integers(0, 10, n // 5).tolist()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)


def per_step(case: str, what: str, logger: str, opts: argparse.Namespace, env: dict[str, str]) -> float:
    _, n1, n2 = CASES[case]
    long, short = (measure(case, what, logger, n, opts, env)["seconds"] for n in (n2, n1))
    return (long - short) / (n2 - n1)


def bench_steps(cases: list[str], opts: argparse.Namespace, env: dict[str, str]) -> None:
    loggers = opts.loggers
    header = ["hand ms"] + [h for logger in loggers for h in (f"{logger} ms", "ratio")]
    header += ["wandb/none"] if set(LOGGERS) <= set(loggers) else []
    if not opts.interleaved:
        print(f"{'case':<14}" + "".join(f"{h:>11}" for h in header))
    for case in cases:
        if opts.compile:  # fill inductor's on-disk cache first, so that both run lengths compile alike
            for what in ("hand", "ganlab"):
                measure(case, what, "none", 2, opts, env)
        if opts.interleaved:
            bench_interleaved(case, opts, env)
            continue
        runs: dict[str, list[float]] = {"hand": [], **{logger: [] for logger in loggers}}
        for _ in range(opts.repeats):  # interleaved: a slow minute of the machine hits all of them alike
            runs["hand"].append(per_step(case, "hand", "none", opts, env))
            for logger in loggers:
                runs[logger].append(per_step(case, "ganlab", logger, opts, env))
        med = {k: statistics.median(v) * 1e3 for k, v in runs.items()}
        spread = {k: (max(v) - min(v)) * 1e3 for k, v in runs.items()}
        row = f"{case:<14}{med['hand']:>11.2f}"
        row += "".join(f"{med[logger]:>11.2f}{med['hand'] / med[logger]:>11.3f}" for logger in loggers)
        row += f"{med['wandb'] / med['none']:>11.3f}" if set(LOGGERS) <= set(loggers) else ""
        print(row + "   (spread ms: " + ", ".join(f"{k} {v:.2f}" for k, v in spread.items()) + ")")


def bench_interleaved(case: str, opts: argparse.Namespace, env: dict[str, str]) -> None:
    """``--interleaved``: per logger, ``--repeats`` ganlab runs of the case's long length, each with a hand
    step before every one of its steps (:func:`interleaved`); the median over the repeats of each mean."""
    row = f"{case:<14}"
    if opts.floor:
        runs = [measure(case, "floor", "none", CASES[case][2], opts, env) for _ in range(opts.repeats)]
        ratios = [r["hand"] / r["floor"] for r in runs]
        row += f"  [Lightning's empty loop] ratio {statistics.median(ratios):.3f}"
        row += f" ({min(ratios):.3f}-{max(ratios):.3f})"
    for logger in opts.loggers:
        runs = [measure(case, "interleaved", logger, CASES[case][2], opts, env) for _ in range(opts.repeats)]
        hand = statistics.median(r["hand"] for r in runs)
        ganlab = statistics.median(r["ganlab"] for r in runs)
        ratios = [r["hand"] / r["ganlab"] for r in runs]
        row += (
            f"  [{logger}] hand {hand:.2f} ms, ganlab {ganlab:.2f} ms, ratio {statistics.median(ratios):.3f}"
        )
        row += f" ({min(ratios):.3f}-{max(ratios):.3f})"
    print(row)


def bench_cli(repeats: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def timed(*args: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, capture_output=True, cwd=tempfile.gettempdir())
        return time.perf_counter() - started

    t = {"import torch": [], "--help": [], "config error": []}
    for _ in range(repeats):
        t["import torch"].append(timed("-c", "import torch"))
        t["--help"].append(timed("-m", "ganlab.train", "--help"))
        t["config error"].append(timed("-m", "ganlab.train", "optim.g.lr=-1", "logger=none"))
    base = statistics.median(t["import torch"])
    for name, values in t.items():
        med = statistics.median(values)
        print(f"{name:<14}{med:>8.2f} s   ratio to import torch {med / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="32-true", choices=("32-true", "bf16-mixed", "16-mixed"))
    parser.add_argument("--compile", action="store_true", help="compile=true (and compile in the hand loop)")
    parser.add_argument(
        "--loggers", default=",".join(LOGGERS), help=f"comma-separated, of {', '.join(LOGGERS)}"
    )
    parser.add_argument(
        "--interleaved",
        action="store_true",
        help="one process per run, a hand step before each ganlab step (the measure for a busy machine)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="with --interleaved: also time Lightning's loop around the hand step alone (the best ratio "
        "any framework on Lightning's loop can reach)",
    )
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line timing")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--what", help=argparse.SUPPRESS)
    parser.add_argument("--logger", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; valid: {', '.join(CASES)}")
    args.loggers = [name for name in args.loggers.split(",") if name]
    if not args.loggers or not set(args.loggers) <= set(LOGGERS):
        parser.error(
            f"--loggers {','.join(args.loggers)!r}: valid: a comma-separated subset of {', '.join(LOGGERS)}"
        )
    if args.precision == "16-mixed" and args.device == "cpu":
        parser.error(
            "--precision 16-mixed needs --device cuda (ganlab refuses float16 mixed precision on CPU)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        fake_cifar10(Path(tmp) / "data")
        env = {"GANLAB_DATA": str(Path(tmp) / "data"), "BENCH_CWD": tmp}
        print(
            f"load: {open('/proc/loadavg').read().split()[:3]} (1, 5, 15 min); device {args.device}, "
            f"precision {args.precision}, compile {str(args.compile).lower()}"
        )
        bench_steps(cases, args, env)
    if not args.no_cli:
        bench_cli(args.repeats)


if __name__ == "__main__":
    main()
