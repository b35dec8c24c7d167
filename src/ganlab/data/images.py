"""Image datasets, held in memory as uint8 and served in [-1, 1] (the range of a tanh generator)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ganlab.data.base import GANDataModule


class Digits(GANDataModule):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes; Alpaydin & Kaynak 1998).

    Pixel values 0..16 are mapped linearly to [-1, 1]. Nothing is downloaded.
    """

    shape = (1, 8, 8)
    num_classes = 10
    feature_net = "digits"  # ganlab/assets/feature_net_digits.pt (scripts/train_feature_net.py)

    def load(self) -> tuple[Tensor, Tensor]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
        return x, torch.as_tensor(digits.target, dtype=torch.long)


class _TorchvisionImages(GANDataModule):
    """A torchvision dataset read from a local ``root``; ``download=true`` fetches it (needs internet)."""

    expected_files: tuple[str, ...] = ()

    def __init__(self, root: str, download: bool = False, train: bool = True, **loader) -> None:
        super().__init__(**loader)
        self.root = Path(root).expanduser()
        self.download = bool(download)
        self.train = bool(train)

    def missing_error(self) -> FileNotFoundError:
        files = "\n  ".join(str(self.root / f) for f in self.expected_files)
        return FileNotFoundError(
            f"{type(self).__name__}: dataset files not found under data.root={str(self.root)!r}. "
            f"Put these files there:\n  {files}\nor set data.download=true on a machine with internet."
        )

    def load(self) -> tuple[Tensor, Tensor]:
        if not self.download and not all((self.root / f).is_file() for f in self.expected_files):
            raise self.missing_error()
        try:
            dataset = self.torchvision_dataset()
        except Exception as exc:  # torchvision raises RuntimeError/EOFError/pickle errors on bad files
            raise ValueError(
                f"{type(self).__name__}: could not read the dataset under {str(self.root)!r} "
                f"({type(exc).__name__}: {exc}); the files are corrupt or incomplete"
            ) from exc
        return self.to_tensors(dataset)

    def torchvision_dataset(self):
        raise NotImplementedError

    def to_tensors(self, dataset) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


def _idx_files(folder: str) -> tuple[str, ...]:
    """The four uncompressed IDX files of an MNIST-format dataset, under ``<folder>/raw``."""
    names = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    return tuple(f"{folder}/raw/{name}" for name in names)


class MNIST(_TorchvisionImages):
    """MNIST (LeCun et al. 1998) from the four uncompressed IDX files under ``root/MNIST/raw``."""

    shape = (1, 28, 28)
    num_classes = 10
    feature_net = "mnist"  # not shipped: `python scripts/train_feature_net.py --dataset mnist --root DIR`
    expected_files = _idx_files("MNIST")

    def torchvision_dataset(self):
        from torchvision.datasets import MNIST as TorchvisionMNIST

        return TorchvisionMNIST(str(self.root), train=self.train, download=self.download)

    def to_tensors(self, dataset) -> tuple[Tensor, Tensor]:
        return dataset.data.unsqueeze(1).contiguous(), torch.as_tensor(dataset.targets, dtype=torch.long)


class FashionMNIST(MNIST):
    """Fashion-MNIST (Xiao et al. 2017): 28x28 grayscale pictures of 10 kinds of clothing, in MNIST's IDX
    format, from the four uncompressed files under ``root/FashionMNIST/raw`` (the same file names)."""

    feature_net = None  # MNIST's digit classifier is not a feature net for clothes
    expected_files = _idx_files("FashionMNIST")

    def torchvision_dataset(self):
        from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

        return TorchvisionFashionMNIST(str(self.root), train=self.train, download=self.download)


def _cifar10_class():
    from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

    class LocalCIFAR10(TorchvisionCIFAR10):
        """torchvision's CIFAR-10 reader with the MD5 check replaced by a presence check, so that copies
        re-pickled by users (and the small files of the tests) load; a corrupt file fails to unpickle."""

        def _check_integrity(self) -> bool:
            names = [name for name, _ in self.train_list + self.test_list] + [self.meta["filename"]]
            return all((Path(self.root) / self.base_folder / name).is_file() for name in names)

        def _load_meta(self) -> None:
            with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return LocalCIFAR10


class CIFAR10(_TorchvisionImages):
    """CIFAR-10 (Krizhevsky 2009) from the python pickle batches under ``root/cifar-10-batches-py``."""

    shape = (3, 32, 32)
    num_classes = 10
    expected_files = tuple(
        f"cifar-10-batches-py/{name}"
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    )

    def torchvision_dataset(self):
        return _cifar10_class()(str(self.root), train=self.train, download=self.download)

    def to_tensors(self, dataset) -> tuple[Tensor, Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2)))
        return x, torch.as_tensor(dataset.targets, dtype=torch.long)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageFolder(GANDataModule):
    """Every image under ``path`` (searched recursively; suffixes :data:`IMAGE_SUFFIXES`, in sorted path
    order), converted to ``channels`` (1: grayscale, 3: RGB), resized so that its shorter side is ``size``
    (bilinear, antialiased), centre-cropped to ``size x size``, and held in memory as one uint8 tensor.

    ``labels_from_subfolders``: an image's class is the index of its first-level subfolder of ``path``
    among those holding images, in sorted order (their names in ``classes``); ``num_classes`` is set when
    the data is loaded. Images directly in ``path`` are then refused, as they have no class.
    """

    def __init__(
        self, path: str, size: int = 32, channels: int = 3, labels_from_subfolders: bool = False, **loader
    ) -> None:
        super().__init__(**loader)
        if int(channels) not in (1, 3):
            raise ValueError(f"ImageFolder: channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        if int(size) < 1:
            raise ValueError(f"ImageFolder: size must be >= 1, got {size}")
        self.path = Path(path).expanduser()
        self.size, self.channels = int(size), int(channels)
        self.labels_from_subfolders = bool(labels_from_subfolders)
        self.shape = (self.channels, self.size, self.size)
        self.classes: list[str] = []

    def find(self) -> tuple[list[Path], list[int]]:
        """The image files and their class indices (0 without ``labels_from_subfolders``)."""
        if not self.path.is_dir():
            raise FileNotFoundError(f"ImageFolder: data.path={str(self.path)!r} is not a folder")
        files = sorted(f for f in self.path.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not files:
            raise FileNotFoundError(
                f"ImageFolder: no images under data.path={str(self.path)!r} "
                f"(looked for {', '.join(IMAGE_SUFFIXES)})"
            )
        if not self.labels_from_subfolders:
            return files, [0] * len(files)
        loose = [f.name for f in files if f.parent == self.path]
        if loose:
            raise ValueError(
                f"ImageFolder: {len(loose)} images lie directly in {str(self.path)!r} (e.g. {loose[0]!r}); "
                "with labels_from_subfolders=true each image must be in a class subfolder"
            )
        folders = [f.relative_to(self.path).parts[0] for f in files]
        self.classes = sorted(set(folders))
        self.num_classes = len(self.classes)
        index = {name: i for i, name in enumerate(self.classes)}
        return files, [index[name] for name in folders]

    def read(self, file: Path) -> Tensor:
        """One image as a ``(channels, size, size)`` uint8 tensor."""
        from PIL import Image, UnidentifiedImageError
        from torchvision.transforms import functional as TF

        try:
            with Image.open(file) as image:
                image = image.convert("L" if self.channels == 1 else "RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"ImageFolder: cannot read {str(file)!r} as an image ({exc})") from exc
        image = TF.center_crop(TF.resize(image, self.size), self.size)
        array = np.asarray(image, dtype=np.uint8).reshape(self.size, self.size, self.channels)
        return torch.from_numpy(array.copy()).permute(2, 0, 1)

    def load(self) -> tuple[Tensor, Tensor]:
        files, labels = self.find()
        x = torch.empty((len(files), *self.shape), dtype=torch.uint8)
        for i, file in enumerate(files):
            x[i] = self.read(file)
        return x, torch.tensor(labels, dtype=torch.long)
