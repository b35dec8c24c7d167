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


class MNIST(_TorchvisionImages):
    """MNIST (LeCun et al. 1998) from the four uncompressed IDX files under ``root/MNIST/raw``."""

    shape = (1, 28, 28)
    num_classes = 10
    expected_files = tuple(
        f"MNIST/raw/{name}"
        for name in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    )

    def torchvision_dataset(self):
        from torchvision.datasets import MNIST as TorchvisionMNIST

        return TorchvisionMNIST(str(self.root), train=self.train, download=self.download)

    def to_tensors(self, dataset) -> tuple[Tensor, Tensor]:
        return dataset.data.unsqueeze(1).contiguous(), torch.as_tensor(dataset.targets, dtype=torch.long)


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
