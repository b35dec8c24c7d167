"""Small datasets in the real on-disk formats (IDX for MNIST and Fashion-MNIST, pickled batches for
CIFAR-10, image files for a folder of images, CSV for a table)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (the MNIST format): magic 0x0000 08 <ndim>, big-endian int32 sizes, uint8 data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(root: Path, n: int = 20, folder: str = "MNIST") -> tuple[np.ndarray, np.ndarray]:
    """MNIST's four IDX files under ``root/<folder>/raw`` (``folder="FashionMNIST"`` for Fashion-MNIST)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    raw = root / folder / "raw"
    write_idx(raw / "train-images-idx3-ubyte", images)
    write_idx(raw / "train-labels-idx1-ubyte", labels)
    write_idx(raw / "t10k-images-idx3-ubyte", images[:5])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[:5])
    return images, labels


def make_cifar10(root: Path, n_per_batch: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    all_data = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        if name != "test_batch":
            all_data.append(data)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return np.concatenate(all_data)


def make_image_folder(root: Path, n: int = 8, classes: tuple[str, ...] = ("a", "b"), side: int = 20) -> Path:
    """``n`` random RGB PNGs of ``side x (side + 6)`` pixels spread over the class subfolders of ``root``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / classes[i % len(classes)]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(side, side + 6, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


def make_table(path: Path, n: int = 64) -> np.ndarray:
    """A CSV file with a header and three columns of very different scales; returns the values."""
    rng = np.random.default_rng(0)
    values = rng.normal(loc=[100.0, -3.0, 0.0], scale=[20.0, 0.01, 1.0], size=(n, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, values, delimiter=",", header="income,temperature,score", comments="")
    return values
