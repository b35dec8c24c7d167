"""The GAN LightningModule: two networks, two optimizers, manual optimisation.

One training step is ``n_critic`` discriminator updates, each on its own slice of the step's real batch
and fresh noise, followed by one generator update. The module knows neither the loss nor the
architecture by name: it calls ``loss.d_loss`` / ``loss.g_loss`` on logits and adds every due penalty.

Step counting: Lightning's ``global_step`` counts optimizer steps (``n_critic + 1`` per training step
here), so ganlab keeps its own ``g_steps`` / ``d_steps`` and ganlab.train converts ``trainer.max_steps``
(generator updates) into Lightning's unit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from ganlab.losses import AdversarialLoss
from ganlab.penalties import Penalty

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class Diverged(RuntimeError):
    """A loss, gradient norm or weight became NaN or infinite."""

    def __init__(self, what: str, g_step: int, d_step: int) -> None:
        super().__init__(f"{what} is not finite at generator step {g_step} (discriminator step {d_step})")
        self.what, self.g_step, self.d_step = what, g_step, d_step


def grad_norm(module: nn.Module) -> Tensor:
    """Global L2 norm of the gradients of ``module``'s parameters (0 when none has a gradient)."""
    norms = [p.grad.detach().norm(2) for p in module.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


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
        noise_seed: seed of the dedicated noise generator (offset by the process rank, so that ranks
            draw different noise).
        lr_schedule: optional learning-rate scheduler factory (Hydra ``_partial_``, e.g. cosine annealing)
            applied to each optimizer and stepped once per generator step.
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
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        self.penalties = dict(penalties or {})
        self.optim_g, self.optim_d = optim_g, optim_d
        self.n_critic = int(n_critic)
        self.clip_grad_norm_g, self.clip_grad_norm_d = clip_grad_norm_g, clip_grad_norm_d
        self.noise_seed = int(noise_seed)
        self.lr_schedule = lr_schedule
        self.g_steps = 0
        self.d_steps = 0
        self._noise: torch.Generator | None = None
        self._noise_state: Tensor | None = None
        self.run_config: dict[str, Any] = {}

    @property
    def z_dim(self) -> int:
        return int(self.generator.z_dim)

    def configure_optimizers(self) -> Any:
        optimizers = [self.optim_g(self.generator.parameters()), self.optim_d(self.discriminator.parameters())]
        if self.lr_schedule is None:
            return optimizers
        return optimizers, [self.lr_schedule(opt) for opt in optimizers]

    # noise -------------------------------------------------------------------------------------------
    @property
    def noise(self) -> torch.Generator:
        """The generator of training noise, on the module's device; its state is checkpointed."""
        if self._noise is None or self._noise.device != self.device:
            self._noise = torch.Generator(device=self.device)
            self._noise.manual_seed(self.noise_seed + 1_000_003 * self.global_rank)
            if self._noise_state is not None:
                self._noise.set_state(self._noise_state)
                self._noise_state = None
        return self._noise

    def sample_z(self, n: int) -> Tensor:
        return torch.randn(n, self.z_dim, device=self.device, generator=self.noise)

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """Samples for ``z`` with the generator in eval mode (batch norm uses running statistics)."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(z.to(self.device))
        finally:
            self.generator.train(was_training)

    # training ----------------------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, _ = batch
        if x.shape[0] % self.n_critic:
            raise ValueError(f"step batch of {x.shape[0]} samples does not split into n_critic={self.n_critic}")
        opt_g, opt_d = self.optimizers()
        d_logs: dict[str, list[Tensor]] = {}
        for real in x.chunk(self.n_critic):
            for key, value in self._discriminator_step(opt_d, real).items():
                d_logs.setdefault(key, []).append(value)
        # the mean over the critic updates that reported a value (a lazy penalty is not due on every one)
        logs = {key: torch.stack(values).mean() for key, values in d_logs.items()}
        logs.update(self._generator_step(opt_g, x.shape[0] // self.n_critic))
        # self.log costs milliseconds per key, so log only on the steps Lightning writes out
        if self.g_steps % self.trainer.log_every_n_steps == 0:
            logs["lr/G"] = torch.tensor(opt_g.param_groups[0]["lr"])
            logs["lr/D"] = torch.tensor(opt_d.param_groups[0]["lr"])
            self.log_dict(logs, on_step=True, on_epoch=False)
            self.log_dict({"g": logs["loss/g"], "d": logs["loss/d"]}, prog_bar=True, logger=False)
        if self.lr_schedule is not None:  # after logging the rates this step used
            for scheduler in self.lr_schedulers():  # a list: one scheduler per optimizer
                scheduler.step()

    def _discriminator_step(self, opt: Any, real: Tensor) -> dict[str, Tensor]:
        self.toggle_optimizer(opt)
        with torch.no_grad():
            fake = self.generator(self.sample_z(real.shape[0]))
        real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)
        loss = self.loss.d_loss(real_logits, fake_logits)
        logs = {"loss/d": loss.detach(), "D/real": real_logits.detach().mean(), "D/fake": fake_logits.detach().mean()}
        total = loss
        for name, penalty in self.penalties.items():
            if penalty.is_due(self.d_steps):
                value = penalty(self.discriminator, real, fake)
                logs[f"penalty/{name}"] = value.detach()
                total = total + value
        self._check_finite(total, "discriminator loss")
        opt.zero_grad(set_to_none=True)
        self.manual_backward(total)
        logs["grad_norm/D"] = self._clip(opt, self.discriminator, self.clip_grad_norm_d, "D")
        opt.step()
        self.loss.after_d_step(self.discriminator)
        self.untoggle_optimizer(opt)
        self.d_steps += 1
        return logs

    def _generator_step(self, opt: Any, batch_size: int) -> dict[str, Tensor]:
        self.toggle_optimizer(opt)
        loss = self.loss.g_loss(self.discriminator(self.generator(self.sample_z(batch_size))))
        self._check_finite(loss, "generator loss")
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        norm = self._clip(opt, self.generator, self.clip_grad_norm_g, "G")
        opt.step()
        self.untoggle_optimizer(opt)
        self.g_steps += 1
        return {"loss/g": loss.detach(), "grad_norm/G": norm}

    def _clip(self, opt: Any, net: nn.Module, max_norm: float | None, name: str) -> Tensor:
        """The gradient norm before clipping; clips to ``max_norm`` when set."""
        norm = grad_norm(net)
        self._check_finite(norm, f"gradient norm of {name}")
        if max_norm is not None:
            self.clip_gradients(opt, gradient_clip_val=max_norm, gradient_clip_algorithm="norm")
        return norm

    def _check_finite(self, value: Tensor, what: str) -> None:
        if not torch.isfinite(value).all():
            raise Diverged(what, self.g_steps, self.d_steps)

    # checkpointing -----------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["ganlab"] = {
            "g_steps": self.g_steps,
            "d_steps": self.d_steps,
            "noise_rng": self.noise.get_state(),
            "config": self.run_config,
            "data_shape": list(self.generator.data_shape),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["ganlab"]
        self.g_steps, self.d_steps = int(state["g_steps"]), int(state["d_steps"])
        self._noise, self._noise_state = None, state["noise_rng"]
