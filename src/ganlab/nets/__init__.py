"""Plain ``nn.Module`` generators and discriminators. Each receives ``data_shape`` (one sample's shape,
read from the data module) and, for generators, ``z_dim``; no size is hard-coded in a model file.

A class-conditional net declares ``conditional = True``, takes ``num_classes`` in its constructor (read
from the data module like ``data_shape``) and is called as ``net(x, labels)``; every other net is called as
``net(x)``. :func:`build_net` and :func:`run` are the two places that honour this contract.
"""

from __future__ import annotations

import inspect

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig
from torch import Tensor, nn


def is_conditional(net: nn.Module) -> bool:
    """Whether ``net`` takes class labels (it declares ``conditional = True``)."""
    return bool(getattr(net, "conditional", False))


def run(net: nn.Module, x: Tensor, labels: Tensor | None) -> Tensor:
    """``net(x, labels)`` for a conditional net, ``net(x)`` for any other (``labels`` is then ignored)."""
    return net(x, labels) if is_conditional(net) else net(x)


def build_net(cfg: DictConfig, data_shape: tuple[int, ...], num_classes: int | None) -> nn.Module:
    """Instantiate the net config ``cfg`` with ``data_shape`` and, when its constructor takes
    ``num_classes``, the data's number of classes (an error when the data has no labels)."""
    kwargs: dict[str, object] = {"data_shape": tuple(data_shape)}
    if "num_classes" in inspect.signature(get_class(cfg._target_)).parameters:
        if num_classes is None:
            raise ValueError(
                f"{cfg._target_} is class-conditional, but the data has no class labels (num_classes is "
                "None); use an unconditional model or labelled data (e.g. image_folder with "
                "data.labels_from_subfolders=true)"
            )
        kwargs["num_classes"] = int(num_classes)
    return instantiate(cfg, **kwargs)
