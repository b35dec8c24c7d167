"""ganlab.sample round-trips from a checkpoint: the samples are the trained generator's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cfgtools import compose_cfg
from ganlab.sample import draw, load_checkpoint, load_generator, main
from ganlab.train import build, train


@pytest.fixture(scope="module")
def toy_ckpt(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("toy")
    train(compose_cfg(["trainer.max_steps=3"], run))
    return run / "checkpoints" / "last.ckpt"


def test_npy_holds_the_generator_outputs_of_the_checkpoint(toy_ckpt, tmp_path, make_cfg):
    assert main([f"ckpt={toy_ckpt}", "n=50", f"out={tmp_path / 's.npy'}", "seed=4"]) == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (50, 2) and samples.dtype == np.float32
    # the same generator rebuilt independently from the run's config and state dict
    ckpt = torch.load(toy_ckpt, weights_only=True)
    module, _ = build(make_cfg("trainer.max_steps=3"))
    module.load_state_dict(ckpt["state_dict"])
    z = torch.randn(50, module.z_dim, generator=torch.Generator().manual_seed(4))
    np.testing.assert_array_equal(samples, module.generate(z).numpy())


def test_same_seed_same_samples_other_seed_other_samples(toy_ckpt):
    generator, _ = load_generator(load_checkpoint(toy_ckpt))
    assert torch.equal(draw(generator, 10, seed=1), draw(generator, 10, seed=1))
    torch.testing.assert_close(draw(generator, 10, seed=1, batch_size=3), draw(generator, 10, seed=1))
    assert not torch.equal(draw(generator, 10, seed=1), draw(generator, 10, seed=2))


def test_png_scatter_for_2d_data(toy_ckpt, tmp_path):
    assert main([f"ckpt={toy_ckpt}", "n=100", f"out={tmp_path / 'p.png'}"]) == 0
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_images_npy_and_grid(make_cfg, tmp_path):
    cfg = make_cfg("data=digits", "model=dcgan", "trainer.max_steps=2")
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert main([f"ckpt={ckpt}", "n=9", f"out={tmp_path / 'd.npy'}"]) == 0
    x = np.load(tmp_path / "d.npy")
    assert x.shape == (9, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert main([f"ckpt={ckpt}", "n=16", f"out={tmp_path / 'd.png'}"]) == 0
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "d.png").shape[:2] == (
        4 * 10 + 2,
        4 * 10 + 2,
    )  # 4x4 grid, pad 2


@pytest.mark.parametrize(
    "args,message",
    [
        (["n=5", "out=x.npy"], "missing ['ckpt']"),
        (["ckpt=CKPT", "n=0", "out=x.npy"], "n=0 is invalid"),
        (["ckpt=CKPT", "n=5", "out=x.jpg"], "must end in one of"),
        (["ckpt=CKPT", "n=5", "out=x.npy", "colour=red"], "valid keys"),
        (["ckpt=/nonexistent.ckpt", "n=5", "out=x.npy"], "does not exist"),
        (["ckpt=GARBAGE", "n=5", "out=x.npy"], "cannot be read"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(toy_ckpt, tmp_path, capsys, args, message):
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    args = [a.replace("CKPT", str(toy_ckpt)).replace("GARBAGE", str(tmp_path / "garbage.ckpt")) for a in args]
    args = [a.replace("out=", f"out={tmp_path}/") for a in args]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("x.*"))
