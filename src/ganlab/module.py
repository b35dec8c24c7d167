"""The GAN LightningModule: two networks, two optimizers, manual optimisation.

One training step is ``n_critic`` discriminator updates, each on its own slice of the step's real batch
and fresh noise, followed by one generator update (which sees the last slice's real logits when the loss
asks for them: ``AdversarialLoss.g_needs_real``). The module knows neither the loss nor the
architecture by name: it calls ``loss.d_loss`` / ``loss.g_loss`` on logits and adds every due penalty.

Step counting: Lightning sees one optimisation step per training step, the generator update, which
goes through its optimizer wrapper and backward (so its hooks ``on_before_backward``,
``on_after_backward`` and ``on_before_optimizer_step`` run once per step, for G); ``global_step`` therefore
counts generator updates, the unit of ``trainer.max_steps``. The ``n_critic`` discriminator updates use
D's optimizer directly (with the gradient scaler of ``16-mixed`` as Lightning would): Lightning's wrapper
and hooks cost about 0.15 ms per update on a CPU. ganlab keeps its own ``g_steps`` / ``d_steps``.

Exact resume: a checkpoint holds everything the rest of a run depends on. Lightning saves the weights
and buffers of every registered submodule (so an EMA copy registered on the module is saved with no
extra code), the optimizers and schedulers and its loop counters; :meth:`GAN.on_save_checkpoint` adds
the step counters, the noise generator, the training RNG streams (torch, CUDA, numpy, python) and the
state of any loss or penalty object that has ``state_dict``/``load_state_dict``. The data order is the
data module's (``ganlab.data.base``).

Several processes (``trainer.strategy=ddp``, ``ganlab.distributed``): each trains unwrapped replicas on
its shard of the global batch; every update averages the network's gradients (and the loss) over the
processes between backward and optimizer step, and every random draw is a row block of a draw for the
global batch (:class:`ganlab.noise.BatchNoise`), so that the run computes what one process with the
global batch computes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from ganlab.augment import InputTransform
from ganlab.distributed import average_gradients, mean_over_processes, replica_spread, world
from ganlab.losses import AdversarialLoss
from ganlab.nets import is_conditional, run
from ganlab.noise import BatchNoise
from ganlab.penalties import Penalty

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class Diverged(RuntimeError):
    """A loss, gradient norm or weight became NaN or infinite."""

    def __init__(self, what: str, g_step: int, d_step: int) -> None:
        super().__init__(f"{what} is not finite at generator step {g_step} (discriminator step {d_step})")
        self.what, self.g_step, self.d_step = what, g_step, d_step


def get_rng_state(device: torch.device) -> dict[str, Any]:
    """The global RNG states (torch CPU, CUDA of ``device``, numpy, python) as their libraries return them
    (:func:`saved_rng_state` converts them for a checkpoint)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Inverse of :func:`get_rng_state`; sets only the generators ``state`` holds."""
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "python" in state:
        random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def get_torch_rng_state(device: torch.device) -> dict[str, Tensor]:
    """torch's global RNG states (CPU, and CUDA of ``device``): a copy of a few kilobytes, cheap to take and
    put back every step (numpy's takes about 100 microseconds each way)."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def saved_rng_state(state: dict[str, Any]) -> dict[str, Any]:
    """:func:`get_rng_state`'s states as tensors and plain values, so that a checkpoint holding them still
    loads with ``torch.load(weights_only=True)``."""
    _, keys, pos, has_gauss, cached = state["numpy"]
    version, py_state, py_gauss = state["python"]
    saved = {
        "torch": state["torch"],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
    }
    return {**saved, "cuda": state["cuda"]} if "cuda" in state else saved


def loaded_rng_state(saved: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`saved_rng_state`."""
    n, py = saved["numpy"], saved["python"]
    keys = n["keys"].numpy().astype(np.uint32)
    state = {
        "torch": saved["torch"],
        "numpy": ("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]),
        "python": (py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]),
    }
    return {**state, "cuda": saved["cuda"]} if "cuda" in saved else state


class _Value(NamedTuple):
    """A loss or gradient norm of one update, queued for :meth:`GAN.check_finite`."""

    network: str  # "generator" or "discriminator"
    kind: str  # "loss" or "gradient norm"
    g_step: int
    d_step: int
    value: Tensor


def grad_norm(module: nn.Module) -> Tensor:
    """Global L2 norm of the gradients of ``module``'s parameters (0 when none has a gradient)."""
    grads = [p.grad.detach() for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2)))  # one kernel for all norms


class GAN(pl.LightningModule):
    """Generator ``G: z -> x`` and discriminator ``D: x -> logit`` trained adversarially.

    Args:
        generator: maps ``(N, generator.z_dim)`` standard normal noise to samples.
        discriminator: maps samples to ``(N,)`` logits.
        loss: the adversarial loss (``ganlab.losses``).
        optim_g, optim_d: optimizer factories taking a parameter iterable (Hydra ``_partial_``), so that
            learning rates and betas are set per network (TTUR: Heusel et al. 2017).
        penalties: name -> regulariser added to D's loss when due (``ganlab.penalties``).
        n_critic: discriminator updates per generator update.
        clip_grad_norm_g, clip_grad_norm_d: clip each network's gradient norm to this value (``None``: off).
        noise_seed: seed of the dedicated noise generator (the same on every process: each keeps its
            rows of each global draw, :class:`ganlab.noise.BatchNoise`).
        lr_schedule: optional learning-rate scheduler factory (Hydra ``_partial_``, e.g. cosine annealing)
            applied to each optimizer and stepped once per generator step.
        augment: name -> transform of every D input (``ganlab.augment``: DiffAugment, instance noise),
            applied in the dict's order; see :meth:`critic`.
        run_config: the run's resolved config, saved in every checkpoint (a resume checks it against its own
            config; ``ganlab.sample`` rebuilds the networks from it).

    Class-conditional nets (``ganlab.nets``: ``conditional = True``) get labels: D the batch's labels for
    real samples; G and D the same uniformly drawn labels for generated ones (drawn from the noise
    generator, so they are part of its checkpointed state).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: AdversarialLoss,
        optim_g: OptimizerFactory,
        optim_d: OptimizerFactory,
        penalties: dict[str, Penalty] | None = None,
        n_critic: int = 1,
        clip_grad_norm_g: float | None = None,
        clip_grad_norm_d: float | None = None,
        noise_seed: int = 0,
        lr_schedule: Callable[..., Any] | None = None,
        augment: dict[str, InputTransform] | None = None,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        self.penalties = dict(penalties or {})
        self.transforms = list((augment or {}).values())  # in order; checkpointed as transform/<index>
        self._sampling_generator: nn.Module | None = None
        self._prepare_sampling: Callable[[], None] | None = None
        self.optim_g, self.optim_d = optim_g, optim_d
        self.n_critic = int(n_critic)
        self.clip_grad_norm_g, self.clip_grad_norm_d = clip_grad_norm_g, clip_grad_norm_d
        self.noise_seed = int(noise_seed)
        self.lr_schedule = lr_schedule
        self.g_steps = 0
        self.d_steps = 0
        self._noise: torch.Generator | None = None
        self._noise_state: Tensor | None = None
        self._train_rng: dict[str, Tensor] | None = None  # the training steps' own torch RNG stream
        self._updated_at: dict[str, int] = {}  # network -> generator step of its latest update
        self._log_now = False  # whether the current step's values are logged
        self.shown: dict[str, float] = {}  # the latest logged losses, for the progress bar
        self._unchecked: list[_Value] = []  # losses and gradient norms not yet checked finite
        self._last_loss: _Value | None = None  # the latest loss checked finite
        self.replica_max_abs_diff: float | None = None  # set at the end of a multi-process training
        self.run_config = dict(run_config or {})

    @property
    def z_dim(self) -> int:
        return int(self.generator.z_dim)

    def configure_optimizers(self) -> Any:
        optimizers = [
            self.optim_g(self.generator.parameters()),
            self.optim_d(self.discriminator.parameters()),
        ]
        if self.lr_schedule is None:
            return optimizers
        return optimizers, [self.lr_schedule(opt) for opt in optimizers]

    # noise -------------------------------------------------------------------------------------------
    @property
    def noise(self) -> torch.Generator:
        """The generator of training noise, on the module's device; its state is checkpointed."""
        if self._noise is None or self._noise.device != self.device:
            self._noise = torch.Generator(device=self.device)
            self._noise.manual_seed(self.noise_seed)
            if self._noise_state is not None:
                self._noise.set_state(self._noise_state)
                self._noise_state = None
        return self._noise

    @property
    def batch_noise(self) -> BatchNoise:
        """Draws from :attr:`noise` of which this process keeps its rows of the global batch."""
        rank, size = world()
        return BatchNoise(self.noise, rank, size)

    def sample_z(self, n: int) -> Tensor:
        return self.batch_noise.randn(n, self.z_dim, device=self.device)

    @property
    def num_classes(self) -> int | None:
        """The number of classes of a conditional generator, else ``None``."""
        return int(self.generator.num_classes) if is_conditional(self.generator) else None

    def sample_labels(self, n: int) -> Tensor | None:
        """``n`` class labels drawn uniformly from the noise generator for a conditional generator; ``None``
        (and no draw, so the noise stream is unchanged) otherwise."""
        if self.num_classes is None:
            return None
        return self.batch_noise.randint(0, self.num_classes, n, device=self.device)

    def set_sampling_generator(
        self, net: nn.Module | None, prepare: Callable[[], None] | None = None
    ) -> None:
        """Make :meth:`generate` draw from ``net`` (an averaged copy of G: ``ganlab.callbacks.ema``) instead
        of G, calling ``prepare()`` first each time (the average's standing batch-norm statistics); ``None``
        restores G. ``net`` is kept out of this module's children (``object.__setattr__`` skips
        ``nn.Module``'s registration), so that DDP never wraps it and the state dict ignores it."""
        object.__setattr__(self, "_sampling_generator", net)
        self._prepare_sampling = prepare if net is not None else None

    @torch.no_grad()
    def generate(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Samples for ``z`` in eval mode (batch norm uses running statistics), from the averaged generator
        when one is set (:meth:`set_sampling_generator`), else from G. A conditional generator without
        ``labels`` gets the balanced labels ``0, 1, ..., K-1, 0, 1, ...``."""
        net = self.generator if self._sampling_generator is None else self._sampling_generator
        if self._prepare_sampling is not None:
            self._prepare_sampling()
        if labels is None and self.num_classes is not None:
            labels = torch.arange(len(z)) % self.num_classes
        was_training = net.training
        net.eval()
        try:
            return run(net, z.to(self.device), None if labels is None else labels.to(self.device))
        finally:
            net.train(was_training)

    def critic(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """D's logits for ``x`` seen through the input transforms (``augment``: DiffAugment, instance
        noise), in order.

        Every discriminator input goes through here: the real and the fake batch of a D step, the fake
        batch of a G step, and the points of the penalties, which get ``x -> critic(x, real labels)`` and
        so differentiate through the transforms (``ganlab.augment``)."""
        noise = self.batch_noise
        for transform in self.transforms:
            x = transform(x, self.g_steps, noise)
        logits = run(self.discriminator, x, labels)
        # at least float32: under mixed precision D computes in bf16/fp16, and the losses' and penalties'
        # reductions of the logits (softplus, means, squares, the gradient sums) then run in float32
        return logits.to(torch.promote_types(logits.dtype, torch.float32))

    # training ----------------------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """One generator update after ``n_critic`` discriminator updates, on the training RNG stream."""
        with self._training_rng():
            self._train_step(batch)

    @contextmanager
    def _training_rng(self) -> Iterator[None]:
        """Run the block on the training steps' own torch RNG stream, then put the outside stream back.

        Why: penalties, input transforms, dropout (anything in a step) may draw from torch's global RNGs
        (CPU and CUDA), and so may callbacks between steps (metrics that subsample, say). Keeping the two
        streams apart makes the training stream, which checkpoints save, depend on the training steps
        alone, so a resumed run draws exactly what an uninterrupted one draws whatever the callbacks and
        evaluation cadence do. The first step seeds the stream from ``noise_seed`` and the rank (not from
        whatever state the global RNG reached, which depends on set-up work such as a metric's cache being
        cold or warm). The swap copies torch's states (microseconds per step).

        numpy's and python's global RNGs are not swapped (that costs about 0.5 ms per step): ganlab draws
        from torch only. The first step seeds them the same way, and checkpoints save and restore them, so a
        component that draws from them in its step still resumes exactly, as long as nothing between steps
        draws from them differently in the resumed run (a callback should use its own generator).
        """
        outside = get_torch_rng_state(self.device)
        if self._train_rng is not None:
            set_rng_state(self._train_rng, self.device)
        else:
            seed = int(np.random.SeedSequence([self.noise_seed, self.global_rank, 1]).generate_state(1)[0])
            torch.manual_seed(seed)
            np.random.seed(seed)
            random.seed(seed)
        try:
            yield
        finally:
            self._train_rng = get_torch_rng_state(self.device)
            set_rng_state(outside, self.device)

    def _train_step(self, batch: tuple[Tensor, Tensor]) -> None:
        x, y = batch
        if x.shape[0] % self.n_critic:
            raise ValueError(
                f"step batch of {x.shape[0]} samples does not split into n_critic={self.n_critic}"
            )
        opt_g, opt_d = self.optimizers()  # D's wrapped optimizer is bypassed: see the module's docstring
        # self.log costs milliseconds per key: log (and measure gradient norms) only on the steps Lightning
        # writes out, counted after this step's generator update
        self._log_now = (self.g_steps + 1) % self.trainer.log_every_n_steps == 0
        d_logs: dict[str, list[Tensor]] = {}
        chunks = list(zip(x.chunk(self.n_critic), y.chunk(self.n_critic), strict=True))
        for real, labels in chunks:
            for key, value in self._discriminator_step(opt_d.optimizer, real, labels).items():
                d_logs.setdefault(key, []).append(value)
        # the mean over the critic updates that reported a value (a lazy penalty is not due on every one)
        logs = {key: torch.stack(values).mean() for key, values in d_logs.items()}
        logs.update(self._generator_step(opt_g, *chunks[-1]))
        if self._log_now:
            self.check_finite()
            logs.update({"lr/G": opt_g.param_groups[0]["lr"], "lr/D": opt_d.param_groups[0]["lr"]})
            self._log(logs)
        if self.lr_schedule is not None:  # after logging the rates this step used
            for scheduler in self.lr_schedulers():  # a list: one scheduler per optimizer
                scheduler.step()

    def _log(self, logs: dict[str, Tensor | float]) -> None:
        """Send a logging step's values to the trackers, as ``self.log_dict(on_step=True, sync_dist=True)``
        would (the mean over the processes, Lightning's step and epoch columns, ``trainer.callback_metrics``)
        at a fraction of its cost: one all-reduce and one host read for all values, where ``self.log``
        costs about a millisecond per key. ``shown`` keeps the losses for the console's bar
        (``ganlab.callbacks.progress``; ``self.log(prog_bar=True)`` would make Lightning read them on the
        host after every later step, a device sync each)."""
        names = [k for k, v in logs.items() if isinstance(v, Tensor)]
        values = mean_over_processes(torch.stack([logs[k].detach().float().reshape(()) for k in names]))
        metrics = {**logs, **dict(zip(names, values.tolist(), strict=True))}
        self.shown = {"g": metrics["loss/g"], "d": metrics["loss/d"]}
        trainer = self.trainer
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})
        step = self.g_steps - 1  # Lightning's step of a training value: the batch's index
        for logger in trainer.loggers:
            logger.log_metrics({**metrics, "epoch": trainer.current_epoch}, step=step)
            logger.save()

    def on_train_end(self) -> None:
        """Check the final weights (:meth:`check_weights`); on several processes, measure how far the
        replicas' parameters differ (0.0: identical)."""
        self.check_weights()
        if world()[1] > 1:
            self.replica_max_abs_diff = replica_spread(self)

    def _fakes(self, n: int) -> tuple[Tensor, Tensor | None]:
        """``n`` generated samples and their labels (``None`` for an unconditional generator)."""
        labels = self.sample_labels(n)
        return run(self.generator, self.sample_z(n), labels), labels

    def _discriminator_step(self, opt: Any, real: Tensor, real_labels: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():  # G's fakes without a graph: G's parameters get no gradient here
            fake, fake_labels = self._fakes(real.shape[0])
        real_logits, fake_logits = self.critic(real, real_labels), self.critic(fake, fake_labels)
        loss = self.loss.d_loss(real_logits, fake_logits)
        logs = {}  # the values of a logging step (:meth:`_log`); none on the others
        if self._log_now:
            logs = {"loss/d": loss.detach(), "D/real": real_logits.mean(), "D/fake": fake_logits.mean()}
        total, grad_scale = loss, self._grad_scale()
        for name, penalty in self.penalties.items():
            if penalty.is_due(self.d_steps):
                # a conditional critic scores every penalty point with the real labels (as StudioGAN does)
                value = penalty(
                    lambda points: self.critic(points, real_labels), real, fake, self.batch_noise, grad_scale
                )
                if self._log_now:
                    logs[f"penalty/{name}"] = value.detach()
                total = total + value
        opt.zero_grad(set_to_none=True)
        scaler = self._scaler()
        (total if scaler is None else scaler.scale(total)).backward()
        # averaged over the processes: every one then sees a non-finite loss of any of them. With a gradient
        # scaler, a penalty whose scaled inner backward overflowed is not finite: the scaler skips that update
        # and lowers its scale (PyTorch AMP), so the loss alone tells whether D diverged
        checked = (total if grad_scale is None else loss).detach()
        self._check_finite(average_gradients(self.discriminator, checked), "discriminator", "loss")
        norm = self._clip(opt, self.discriminator, self.clip_grad_norm_d)
        if norm is not None and self._log_now:
            logs["grad_norm/D"] = norm
        if scaler is None:
            opt.step()
        else:  # unscales, skips the update when a gradient overflowed; then adapts the scale (PyTorch AMP)
            scaler.step(opt)
            scaler.update()
        self._updated_at["discriminator"] = self.g_steps
        self.loss.after_d_step(self.discriminator)
        self.d_steps += 1
        return logs

    def _generator_step(self, opt: Any, real: Tensor, real_labels: Tensor) -> dict[str, Tensor]:
        """One G update on as many fakes as ``real`` has rows. ``real`` is the step's last real slice, the
        one D has just trained on (as reference loops pair G's fakes with the current real batch); D scores
        it, with its labels, only for a loss that declares ``g_needs_real`` (relativistic losses), without
        a graph: real logits do not depend on G and D is not updated here. Any other loss gets ``None``,
        and the step runs (and draws from the noise stream) exactly what it did before the contract.

        D's trainable parameters are frozen for the step (no gradient computed for them; what Lightning's
        ``toggle_optimizer`` does, for D's parameters alone)."""
        frozen = [p for p in self.discriminator.parameters() if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        fake, labels = self._fakes(real.shape[0])
        fake_logits = self.critic(fake, labels)
        real_logits = None
        if self.loss.g_needs_real:
            with torch.no_grad():
                real_logits = self.critic(real, real_labels)
        loss = self.loss.g_loss(fake_logits, real_logits)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self._check_finite(average_gradients(self.generator, loss.detach()), "generator", "loss")
        norm = self._clip(opt, self.generator, self.clip_grad_norm_g)
        opt.step()
        self._updated_at["generator"] = self.g_steps
        for p in frozen:
            p.requires_grad_(True)
        logs = {"loss/g": loss.detach(), **self._transform_logs()} if self._log_now else {}
        if norm is not None and self._log_now:
            logs["grad_norm/G"] = norm
        self.g_steps += 1
        return logs

    def _transform_logs(self) -> dict[str, Tensor]:
        """The input transforms' values at this step (e.g. ``noise/sigma``)."""
        return {k: torch.tensor(float(v)) for t in self.transforms for k, v in t.logs(self.g_steps).items()}

    def _clip(self, opt: Any, net: nn.Module, max_norm: float | None) -> Tensor | None:
        """The gradient norm before clipping, on logging steps and when clipping (else ``None``: the norm is
        not needed every step; a non-finite gradient shows in the next loss, see :meth:`_check_finite`, and
        a gradient norm that overflows at the next logging step); clips to ``max_norm`` when set.

        With a gradient scaler (:meth:`_grad_scale`) the gradients are still scaled by ``S`` here (the scaler
        unscales them in the update after this: Lightning's ``opt.step()`` for G, see
        Lightning-AI/pytorch-lightning #18089, ``scaler.step`` for D): the norm is divided by ``S`` and the
        scaled gradients are clipped at ``S * max_norm``, which is the same
        clipping. A non-finite norm is then an overflow that the scaler skips, not a divergence."""
        if max_norm is None and not self._log_now:
            return None
        norm, grad_scale = grad_norm(net), self._grad_scale()
        if grad_scale is None:
            self._check_finite(
                norm, "generator" if net is self.generator else "discriminator", "gradient norm"
            )
        else:
            norm = norm / grad_scale
        if max_norm is not None:
            bound = max_norm if grad_scale is None else max_norm * float(grad_scale)
            self.clip_gradients(opt, gradient_clip_val=bound, gradient_clip_algorithm="norm")
        return norm

    def _grad_scale(self) -> Tensor | None:
        """The factor ``S`` by which the gradient scaler of ``trainer.precision=16-mixed`` multiplies every
        loss before its backward (Lightning's ``MixedPrecision`` plugin holds it, a ``torch.amp.GradScaler``,
        as ``trainer.precision_plugin.scaler``), as a 0-d tensor on the module's device (no host sync);
        ``None`` when gradients are not scaled (32-bit, ``bf16-mixed``)."""
        scaler = self._scaler()
        return None if scaler is None else scaler.scale(torch.ones((), device=self.device))

    def _scaler(self) -> torch.amp.GradScaler | None:
        """The gradient scaler of ``trainer.precision=16-mixed`` (Lightning's ``MixedPrecision`` plugin's),
        else ``None``."""
        return getattr(self.trainer.precision_plugin, "scaler", None)

    def _check_finite(self, value: Tensor, network: str, kind: str) -> None:
        """Queue ``value``, the loss (``kind="loss"``) or gradient norm of the current update of ``network``,
        for :meth:`check_finite`.

        Reading a value on the host makes the host wait for a GPU (a sync); queued, the values of the steps
        between two logging steps are checked in one read at the logging step, or earlier when anything
        could see the weights (:meth:`check_weights`), and the first non-finite one is still reported with
        the step of its update."""
        self._unchecked.append(_Value(network, kind, self.g_steps, self.d_steps, value.detach()))

    def check_finite(self) -> None:
        """Raise :class:`Diverged` for the first queued non-finite loss or gradient norm
        (:meth:`_check_finite`), with the steps of its update; one host read for the whole queue.

        A non-finite loss after finite ones names the weights of the network whose update followed the last
        finite loss, at that update's step, when they are non-finite now: consecutive losses see the same
        weights but for that one update, and non-finite weights make every loss that uses them non-finite.
        (A loss that overflowed with finite weights and was followed by updates that made that network
        non-finite is named the same way: the cause then is a step early, the step itself exact.)"""
        if not self._unchecked:
            return
        queued, self._unchecked = self._unchecked, []
        finite = torch.isfinite(torch.stack([entry.value.float() for entry in queued])).tolist()
        if all(finite):
            self._last_loss = next((e for e in reversed(queued) if e.kind == "loss"), self._last_loss)
            return
        first = finite.index(False)
        bad = queued[first]
        before = next((e for e in reversed(queued[:first]) if e.kind == "loss"), self._last_loss)
        if bad.kind == "loss" and before is not None and before.network in self._nonfinite_weights():
            raise Diverged(f"weights of {before.network}", before.g_step, bad.d_step)
        raise Diverged(f"{bad.network} {bad.kind}", bad.g_step, bad.d_step)

    def check_weights(self) -> None:
        """Raise :class:`Diverged` when a floating parameter or buffer of any submodule is NaN or infinite,
        naming the networks and the generator step of the update that made them so.

        Not run every step: every update's loss is checked (:meth:`check_finite`, first here), and a
        non-finite weight makes the next loss that uses it non-finite (a non-finite G makes D's fake logits
        non-finite, a non-finite D every logit), which names the cause. What could see the weights before
        that loss is checked checks them first: every checkpoint (never save non-finite weights), the
        evaluation and sample pictures, and
        the end of training.
        """
        self.check_finite()
        bad = self._nonfinite_weights()
        if bad:
            made_at = min(self._updated_at.get(name, self.g_steps) for name in bad)
            raise Diverged(f"weights of {', '.join(bad)}", made_at, self.d_steps)

    def _nonfinite_weights(self) -> list[str]:
        """The submodules with a NaN or infinite floating parameter or buffer."""
        return [
            name
            for name, child in self.named_children()
            if any(not bool(torch.isfinite(t).all()) for t in (*child.parameters(), *child.buffers()))
        ]

    # checkpointing -----------------------------------------------------------------------------------
    def _stateful_parts(self) -> dict[str, Any]:
        """Plain (non-``nn.Module``) parts that carry state of their own: the loss, the penalties and the
        input transforms, when they implement ``state_dict``/``load_state_dict``. Submodules are in
        Lightning's ``state_dict``."""
        parts = {"loss": self.loss, **{f"penalty/{name}": p for name, p in self.penalties.items()}}
        parts.update({f"transform/{i}": t for i, t in enumerate(getattr(self, "transforms", []))})
        return {
            key: part
            for key, part in parts.items()
            if not isinstance(part, nn.Module) and callable(getattr(part, "state_dict", None))
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.check_weights()  # a checkpoint with non-finite weights would poison every resume
        checkpoint["ganlab"] = {
            "g_steps": self.g_steps,
            "d_steps": self.d_steps,
            "noise_rng": self.noise.get_state(),
            "train_rng": self._saved_train_rng(),
            "train_rng_by_rank": self._gather_train_rng(),
            "parts": {key: part.state_dict() for key, part in self._stateful_parts().items()},
            "config": self.run_config,
            "data_shape": list(self.generator.data_shape),
            "num_classes": self.num_classes,
        }

    def _gather_train_rng(self) -> list[dict[str, Any]] | None:
        """Every process's training RNG stream (``None`` on one process: ``train_rng`` holds it), so that
        each process of a resumed multi-process run continues its own. Called on every process."""
        _, size = world()
        if size == 1:
            return None
        states: list[Any] = [None] * size
        torch.distributed.all_gather_object(states, self._saved_train_rng())
        return states

    def _saved_train_rng(self) -> dict[str, Any]:
        """This process's training RNG stream in checkpoint form: torch's training stream (the global one
        before the first step) and numpy's and python's global states (:meth:`_training_rng`)."""
        return saved_rng_state({**get_rng_state(self.device), **(self._train_rng or {})})

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["ganlab"]
        self.g_steps, self.d_steps = int(state["g_steps"]), int(state["d_steps"])
        self._noise, self._noise_state = None, state["noise_rng"]
        rank, size = world()
        by_rank = state.get("train_rng_by_rank")
        if by_rank is not None and len(by_rank) == size:
            saved = by_rank[rank]
        else:  # saved by another number of processes: rank 0 continues its stream, the others start anew
            saved = state.get("train_rng") if rank == 0 else None
        self._train_rng = None
        if saved is not None:
            loaded = loaded_rng_state(saved)
            self._train_rng = {key: loaded[key] for key in ("torch", "cuda") if key in loaded}
            set_rng_state({key: loaded[key] for key in ("numpy", "python")}, self.device)
        for key, part in self._stateful_parts().items():
            if key in state.get("parts", {}):
                part.load_state_dict(state["parts"][key])
