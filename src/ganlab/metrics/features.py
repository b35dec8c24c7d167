"""Feature extractors of the sample-quality metrics (FID, KID, PRDC): images in [-1, 1] -> (N, D) features.

- :class:`InceptionFeatures`: the 2048-d pool3 features of the InceptionV3 graph of the original FID code
  (Szegedy et al. 2016, "Rethinking the Inception Architecture"; Heusel et al. 2017), as ported to PyTorch
  by torch-fidelity. These are the features of published FID / KID / PRDC numbers on CIFAR-10 and the like.
  The weights are read from a local file and never downloaded.
- :class:`DomainFeatures`: the penultimate layer of a small classifier trained on the dataset itself
  (``scripts/train_feature_net.py``), shipped in ``ganlab/assets``. Its numbers compare runs of ganlab
  with one another, not with papers.

Every extractor has a ``name`` and a ``fingerprint()`` (the sha256 of its weights), which key the cache of
real-data statistics (``ganlab.metrics.cache``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from ganlab.nets.classifier import Classifier

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
# where torch-fidelity publishes the file (its URL_INCEPTION_V3), and torchmetrics' FID downloads it from
INCEPTION_WEIGHTS_URL = (
    f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS_FILE}"
)
ASSETS = Path(__file__).resolve().parents[1] / "assets"


def state_dict_sha256(module: nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and bytes of ``module``'s state dict, in sorted key order."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


class FeatureExtractor(nn.Module):
    """A frozen network ``images (N, C, H, W) in [-1, 1] -> (N, dim)`` float features.

    Subclasses put themselves in eval mode and ``train()`` is a no-op, so that batch norm never uses batch
    statistics.
    """

    name: str = ""
    dim: int = 0

    def __init__(self) -> None:
        super().__init__()
        self._memo: tuple[Tensor, int, Tensor] | None = None

    def train(self, mode: bool = True) -> FeatureExtractor:
        return super().train(False)

    def fingerprint(self) -> str:
        """Changes whenever the weights change."""
        return state_dict_sha256(self)

    @torch.no_grad()
    def extract(self, images: Tensor) -> Tensor:
        """``forward`` without gradients, remembering the last batch: the evaluation callback feeds the same
        batch tensor to every metric, so FID, KID and PRDC sharing one extractor run it once per batch."""
        memo = self._memo
        if memo is None or memo[0] is not images or memo[1] != images._version:
            memo = self._memo = (images, images._version, self(images))
        return memo[2]


def inception_weights_path(weights_path: str | Path | None = None) -> Path:
    """``weights_path``, or by default the file in torch hub's cache (where torch-fidelity and torchmetrics
    download it); raises ``FileNotFoundError`` saying where to put the file when it is absent."""
    default = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE
    path = Path(weights_path).expanduser() if weights_path else default
    if not path.is_file():
        where = "" if weights_path else " (or put it elsewhere and set metrics.inception_weights to its path)"
        raise FileNotFoundError(
            f"InceptionV3 FID weights not found: {str(path)!r}. ganlab does not download them: fetch "
            f"{INCEPTION_WEIGHTS_URL} on a machine with internet and copy it to {str(path)!r}{where}."
        )
    return path


def to_uint8(images: Tensor) -> Tensor:
    """``[-1, 1] -> {0..255}``: ``clamp(127.5 x + 128, 0, 255)`` truncated, i.e. ``127.5 (x + 1)`` rounded
    half up (torch-fidelity's and StyleGAN's convention), which maps uint8 datasets served in [-1, 1] back to
    their exact bytes."""
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)


class InceptionFeatures(FeatureExtractor):
    """pool3 features of torch-fidelity's ``FeatureExtractorInceptionV3`` (the TF FID graph, bit-compatible).

    Preprocessing, as torch-fidelity expects: grayscale is repeated to 3 channels, ``[-1, 1]`` is mapped to
    uint8 (:func:`to_uint8`), and the network resizes to 299x299 with TensorFlow 1.x's bilinear interpolation
    before its ``(x - 128) / 128``.
    """

    name = "inception-v3-pool3"
    dim = 2048

    def __init__(self, weights_path: str | Path | None = None) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = inception_weights_path(weights_path)
        try:
            self.net = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
            )
        except Exception as exc:  # torch.load / load_state_dict raise various errors on a bad file
            raise ValueError(
                f"could not load the InceptionV3 weights {str(path)!r} ({type(exc).__name__}: {exc}); "
                f"the file is corrupt or not {INCEPTION_WEIGHTS_FILE} from {INCEPTION_WEIGHTS_URL}"
            ) from exc
        self.eval()

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"InceptionFeatures takes (N, 1 or 3, H, W) images, got {tuple(images.shape)}")
        (features,) = self.net(to_uint8(images.expand(-1, 3, -1, -1)))
        return features


def domain_weights_path(dataset: str, weights_path: str | Path | None = None) -> Path:
    """``weights_path``, or by default ``ganlab/assets/feature_net_<dataset>.pt``; its ``.json`` must lie next
    to it."""
    path = Path(weights_path).expanduser() if weights_path else ASSETS / f"feature_net_{dataset}.pt"
    if not (path.is_file() and path.with_suffix(".json").is_file()):
        raise FileNotFoundError(
            f"no domain feature network for dataset {dataset!r}: {str(path)!r} or its .json is missing. "
            f"Train it with `python scripts/train_feature_net.py --dataset {dataset}` (add --root DIR for "
            f"file-based datasets), or use the Inception features."
        )
    return path


class DomainFeatures(FeatureExtractor):
    """Penultimate activations of the ``ganlab.nets.classifier.Classifier`` trained on ``dataset``.

    The ``.json`` next to the weights holds the network's constructor arguments, the image shape it was
    trained on, its held-out accuracy and the sha256 of its weights, which is checked on loading.
    """

    def __init__(self, dataset: str, weights_path: str | Path | None = None) -> None:
        super().__init__()
        path = domain_weights_path(dataset, weights_path)
        self.meta = json.loads(path.with_suffix(".json").read_text())
        self.net = Classifier(**self.meta["net"])
        self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        if state_dict_sha256(self.net) != self.meta["sha256"]:
            raise ValueError(
                f"{str(path)!r} does not match the sha256 recorded in its .json; retrain or restore it"
            )
        self.net.requires_grad_(False)
        self.name = f"classifier-{dataset}"
        self.dim = self.net.feature_dim
        self.shape = tuple(self.meta["shape"])
        self.eval()

    def forward(self, images: Tensor) -> Tensor:
        if tuple(images.shape[1:]) != self.shape:
            raise ValueError(
                f"{self.name} was trained on images of shape {self.shape}, got {tuple(images.shape[1:])}"
            )
        return self.net.features(images)


_SHARED: dict[tuple[str, str, int, int], FeatureExtractor] = {}


def load_extractor(kind: str, dataset: str, weights_path: str | Path | None = None) -> FeatureExtractor:
    """The extractor ``kind`` (``"inception"`` or ``"domain"``, the latter for ``dataset``), one instance per
    weights file (and modification time) in a process, so that the metrics of one run share its weights and
    its forward pass (:meth:`FeatureExtractor.extract`)."""
    if kind == "inception":
        path = inception_weights_path(weights_path)
    elif kind == "domain":
        path = domain_weights_path(dataset, weights_path)
    else:
        raise ValueError(f"unknown feature extractor {kind!r}; valid: 'inception', 'domain'")
    stat = path.stat()
    key = (kind, str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _SHARED:
        _SHARED[key] = InceptionFeatures(path) if kind == "inception" else DomainFeatures(dataset, path)
    return _SHARED[key]
