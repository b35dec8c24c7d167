"""Image datasets through their real loading code, on small files in the real formats."""

from __future__ import annotations

import pytest
import torch
from fakedata import make_cifar10, make_mnist

from ganlab.data.images import CIFAR10, MNIST, Digits


def test_digits_are_the_bundled_1797_images_in_minus_one_one():
    dm = Digits()
    dm.setup()
    x, y = dm.train_set.x, dm.train_set.y
    assert x.shape == (1797, 1, 8, 8) and set(y.tolist()) == set(range(10))
    assert x.min().item() == -1.0 and x.max().item() == 1.0


def test_mnist_loads_idx_files_exactly(tmp_path):
    images, labels = make_mnist(tmp_path)
    dm = MNIST(root=str(tmp_path), batch_size=4)
    dm.setup()
    assert dm.train_set.x.dtype == torch.uint8  # held as bytes, served as floats
    x, y = dm.train_set[list(range(20))]
    expected = torch.from_numpy(images).float().unsqueeze(1) / 127.5 - 1
    torch.testing.assert_close(x, expected)
    assert y.tolist() == labels.tolist()
    xb, _ = next(iter(dm.train_dataloader()))
    assert xb.shape == (4, 1, 28, 28) and xb.min() >= -1 and xb.max() <= 1


def test_cifar10_loads_pickle_batches_exactly(tmp_path):
    data = make_cifar10(tmp_path)
    dm = CIFAR10(root=str(tmp_path), batch_size=2)
    dm.setup()
    x, _ = dm.train_set[list(range(len(data)))]
    assert x.shape == (20, 3, 32, 32)
    expected = torch.from_numpy(data.reshape(-1, 3, 32, 32)).float() / 127.5 - 1
    torch.testing.assert_close(x, expected)


@pytest.mark.parametrize("cls,needed", [(MNIST, "train-images-idx3-ubyte"), (CIFAR10, "data_batch_1")])
def test_missing_files_say_where_to_put_them(tmp_path, cls, needed):
    with pytest.raises(FileNotFoundError) as err:
        cls(root=str(tmp_path / "nowhere")).setup()
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and needed in message and "download=true" in message


def test_corrupt_mnist_file_is_reported_as_corrupt(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    with pytest.raises(ValueError, match="corrupt"):
        MNIST(root=str(tmp_path)).setup()


def test_corrupt_cifar_batch_is_reported_as_corrupt(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="corrupt"):
        CIFAR10(root=str(tmp_path)).setup()
