"""Image datasets through their real loading code, on small files in the real formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fakedata import make_cifar10, make_image_folder, make_mnist
from ganlab.data.images import CIFAR10, MNIST, Digits, FashionMNIST, ImageFolder


def test_digits_are_the_bundled_1797_images_in_minus_one_one():
    dm = Digits()
    dm.setup()
    x, y = dm.train_set.x, dm.train_set.y
    assert x.shape == (1797, 1, 8, 8) and set(y.tolist()) == set(range(10))
    assert x.min().item() == -1.0 and x.max().item() == 1.0


@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
def test_mnist_format_loads_idx_files_exactly(tmp_path, cls):
    images, labels = make_mnist(tmp_path, folder=cls.__name__)
    dm = cls(root=str(tmp_path), batch_size=4)
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


@pytest.mark.parametrize(
    "cls,needed",
    [
        (MNIST, "MNIST/raw/train-images-idx3-ubyte"),
        (FashionMNIST, "FashionMNIST/raw/train-images-idx3-ubyte"),
        (CIFAR10, "data_batch_1"),
    ],
)
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


def test_fashion_mnist_does_not_read_mnist_files(tmp_path):
    make_mnist(tmp_path)  # MNIST/raw only
    with pytest.raises(FileNotFoundError, match="FashionMNIST/raw"):
        FashionMNIST(root=str(tmp_path)).setup()


BLACK, RED, GREEN, BLUE = (0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _banded(height: int = 32, width: int = 64) -> np.ndarray:
    """Rows 0-7 black; below them columns 0-11 red, 12-51 green, 52-63 blue."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[8:, :12], pixels[8:, 12:52], pixels[8:, 52:] = RED, GREEN, BLUE
    return pixels


@pytest.mark.parametrize("tall", [False, True], ids=["wide", "tall"])
def test_image_folder_resizes_the_shorter_side_then_crops_the_centre(tmp_path, tall):
    """64x32 -> shorter side 16 (32x16) -> centre 16x16: the black band shrinks to rows 0-3 and only green
    remains across. Cropping without resizing would lose the black band; squashing would keep red and blue."""
    pixels = _banded()
    Image.fromarray(pixels.transpose(1, 0, 2) if tall else pixels).save(tmp_path / "bands.png")
    dm = ImageFolder(path=str(tmp_path), size=16, batch_size=1)
    dm.setup()
    x = dm.train_set.x[0].permute(1, 2, 0)  # (H, W, C) uint8
    x = x.transpose(0, 1) if tall else x
    assert dm.train_set.x.shape == (1, 3, 16, 16) and dm.train_set.x.dtype == torch.uint8
    assert (x[:3] == torch.tensor(BLACK, dtype=torch.uint8)).all()  # rows 0-2 (3 blurs with the edge)
    torch.testing.assert_close(
        x[5:].int(), torch.tensor(GREEN, dtype=torch.int32).expand(11, 16, 3), rtol=0, atol=1
    )


def test_image_folder_grayscale_uses_luma(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (10, 12), GREEN).save(tmp_path / "green.jpg", quality=100)
    Image.new("RGB", (8, 8), BLACK).save(tmp_path / "sub" / "black.png")
    dm = ImageFolder(path=str(tmp_path), size=4, channels=1, batch_size=1)
    dm.setup()
    assert dm.shape == (1, 4, 4) and dm.num_classes is None
    green, black = dm.train_set.x  # sorted paths: green.jpg, sub/black.png (found recursively)
    assert green.float().mean().item() == pytest.approx(0.587 * 255, abs=2)  # ITU-R 601 luma of pure green
    assert (black == 0).all()


def test_image_folder_labels_from_subfolders(tmp_path):
    make_image_folder(tmp_path, n=9, classes=("dogs", "cats", "birds"))
    (tmp_path / "readme.txt").write_text("not an image")  # ignored: not an image suffix
    dm = ImageFolder(path=str(tmp_path), size=8, labels_from_subfolders=True, batch_size=2)
    dm.setup()
    assert dm.classes == ["birds", "cats", "dogs"] and dm.num_classes == 3
    # files 000..008 went to dogs, cats, birds in turn; sorted by path: birds (2, 5, 8), cats, dogs
    assert dm.train_set.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    xb, _ = dm.train_set[[0, 1]]
    assert xb.shape == (2, 3, 8, 8) and xb.min() >= -1 and xb.max() <= 1
    unlabelled = ImageFolder(path=str(tmp_path), size=8)
    unlabelled.setup()
    assert unlabelled.num_classes is None and unlabelled.train_set.y.tolist() == [0] * 9


def test_image_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ImageFolder(path=str(tmp_path / "nowhere")).setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images under.*png"):
        ImageFolder(path=str(tmp_path / "empty")).setup()
    make_image_folder(tmp_path / "set", n=2)
    Image.new("RGB", (8, 8)).save(tmp_path / "set" / "loose.png")
    with pytest.raises(ValueError, match="1 images lie directly in.*loose.png"):
        ImageFolder(path=str(tmp_path / "set"), labels_from_subfolders=True).setup()
    (tmp_path / "set" / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read.*broken.png"):
        ImageFolder(path=str(tmp_path / "set")).setup()
    with pytest.raises(ValueError, match="channels must be 1 .* or 3"):
        ImageFolder(path=str(tmp_path), channels=4)
