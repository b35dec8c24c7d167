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


# ------------------------------------------------------------------ averaged generator, labels, interpolation


@pytest.fixture(scope="module")
def cond_ckpt(tmp_path_factory) -> Path:
    """A conditional digits run with EMA (decay 0.5, so that the average differs from G after 3 steps)."""
    run = tmp_path_factory.mktemp("cond")
    overrides = ["data=digits", "model=dcgan_cond", "metrics=none", "ema=on", "ema.decay=0.5"]
    train(compose_cfg([*overrides, "trainer.max_steps=3", "optim.g.lr=1e-2"], run))
    return run / "checkpoints" / "last.ckpt"


def _generator(ckpt_path: Path, ema: bool | None):
    return load_generator(load_checkpoint(ckpt_path), ema)[0]


def _npy(ckpt: Path, tmp_path: Path, *args: str) -> np.ndarray:
    out = tmp_path / "out.npy"
    assert main([f"ckpt={ckpt}", f"out={out}", *args]) == 0
    return np.load(out)


def test_averaged_generator_by_default_raw_with_ema_false(cond_ckpt, tmp_path):
    ckpt = torch.load(cond_ckpt, weights_only=True)
    averaged, raw = _generator(cond_ckpt, None), _generator(cond_ckpt, False)
    assert all(torch.equal(v, averaged.state_dict()[k]) for k, v in ckpt["ema"]["state_dict"].items())
    raw_weights = {
        k[len("generator.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("generator.")
    }
    assert all(torch.equal(v, raw.state_dict()[k]) for k, v in raw_weights.items())
    z = torch.randn(6, averaged.z_dim, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(6) % 10  # the labels cycle through the classes
    from_average, from_raw = averaged(z, labels).detach().numpy(), raw(z, labels).detach().numpy()
    np.testing.assert_array_equal(_npy(cond_ckpt, tmp_path, "n=6"), from_average)
    np.testing.assert_array_equal(_npy(cond_ckpt, tmp_path, "n=6", "ema=false"), from_raw)
    assert not np.allclose(from_average, from_raw)


def test_ema_true_without_an_average_is_an_error(toy_ckpt, tmp_path, capsys):
    assert main([f"ckpt={toy_ckpt}", "n=5", f"out={tmp_path / 'x.npy'}", "ema=true"]) == 2
    assert "no averaged generator" in capsys.readouterr().err


def test_label_k_draws_every_sample_of_class_k(cond_ckpt, tmp_path):
    generator = _generator(cond_ckpt, None)
    z = torch.randn(7, generator.z_dim, generator=torch.Generator().manual_seed(3))
    expected = generator(z, torch.full((7,), 4)).detach().numpy()
    np.testing.assert_array_equal(_npy(cond_ckpt, tmp_path, "n=7", "label=4", "seed=3"), expected)


def test_label_grid_has_one_row_per_class(cond_ckpt, tmp_path):
    generator = _generator(cond_ckpt, None)
    z = torch.randn(10 * 3, generator.z_dim, generator=torch.Generator().manual_seed(0))
    expected = generator(z, torch.arange(10).repeat_interleave(3)).detach().numpy()
    np.testing.assert_array_equal(_npy(cond_ckpt, tmp_path, "n=3", "label=grid"), expected)
    assert main([f"ckpt={cond_ckpt}", "n=3", f"out={tmp_path / 'g.png'}", "label=grid"]) == 0
    import matplotlib.image

    # 10 rows of 3 images of 8 pixels, 2-pixel gaps
    assert matplotlib.image.imread(tmp_path / "g.png").shape[:2] == (10 * 10 + 2, 3 * 10 + 2)


def test_interpolation_rows_run_from_g_of_z0_to_g_of_z1(cond_ckpt, tmp_path):
    """interpolate=3 n=5: three rows of five; row r starts at G(z0_r) and ends at G(z1_r), with z0, z1 the
    first and the next three draws of the seed, and keeps one label (class r)."""
    generator = _generator(cond_ckpt, None)
    x = _npy(cond_ckpt, tmp_path, "n=5", "interpolate=3", "seed=2")
    assert x.shape == (15, 1, 8, 8)
    z = torch.randn(6, generator.z_dim, generator=torch.Generator().manual_seed(2))
    rows = torch.arange(3)
    np.testing.assert_allclose(x[0::5], generator(z[:3], rows).detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(x[4::5], generator(z[3:], rows).detach().numpy(), rtol=0, atol=1e-6)
    assert not np.allclose(x[2], x[0])  # the middle differs from the ends
    x = _npy(cond_ckpt, tmp_path, "n=4", "interpolate=2", "label=7")  # seed 0, every row class 7
    z = torch.randn(4, generator.z_dim, generator=torch.Generator().manual_seed(0))
    sevens = torch.full((2,), 7)
    np.testing.assert_allclose(x[0::4], generator(z[:2], sevens).detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(x[3::4], generator(z[2:], sevens).detach().numpy(), rtol=0, atol=1e-6)


def test_slerp_keeps_the_norm_between_equal_norm_endpoints_and_hits_both_ends():
    from ganlab.sample import slerp

    z0, z1 = torch.tensor([[1.0, 0.0], [3.0, 4.0]]), torch.tensor([[0.0, 1.0], [3.0, 4.0]])
    path = slerp(z0, z1, torch.linspace(0, 1, 5))
    assert torch.equal(path[:, 0], z0) and torch.equal(path[:, -1], z1)
    torch.testing.assert_close(path[0].norm(dim=1), torch.ones(5))  # on the unit circle
    torch.testing.assert_close(path[0, 2], torch.tensor([1.0, 1.0]) / 2**0.5)  # half-way: 45 degrees
    torch.testing.assert_close(path[1], z1[1].expand(5, 2))  # equal endpoints: linear fallback, constant


@pytest.mark.parametrize(
    "args,message",
    [
        (["label=3"], "needs a class-conditional checkpoint"),
        (["label=grid"], "needs a class-conditional checkpoint"),
        (["label=-1"], "label=-1 is invalid"),
        (["label=blue"], "label='blue' is invalid"),
        (["label=false"], "label=False is invalid"),
        (["interpolate=0"], "interpolate=0 is invalid"),
        (["interpolate=2", "n=1"], "at least 2"),
        (["ema=maybe"], "ema='maybe' is invalid"),
        (["ema=1"], "ema=1 is invalid"),
    ],
)
def test_bad_label_interpolate_and_ema_arguments_exit_2(toy_ckpt, tmp_path, capsys, args, message):
    base = {"n": "n=5", "out": f"out={tmp_path / 'x.npy'}"}
    for arg in args:
        base[arg.split("=")[0]] = arg
    assert main([f"ckpt={toy_ckpt}", *base.values()]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,message", [(["label=10"], "out of range"), (["label=grid", "interpolate=2"], "not grid")]
)
def test_conditional_label_errors(cond_ckpt, tmp_path, capsys, args, message):
    assert main([f"ckpt={cond_ckpt}", "n=4", f"out={tmp_path / 'x.npy'}", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def dna_ckpt(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("dna")
    train(compose_cfg(["data=synthetic_dna", "model=seq_resnet", "trainer.max_steps=2"], run))
    return run / "checkpoints" / "last.ckpt"


def test_sequences_decode_to_fasta_and_text_and_draw_their_frequencies(dna_ckpt, tmp_path):
    assert main([f"ckpt={dna_ckpt}", "n=6", f"out={tmp_path / 's.npy'}", "seed=2"]) == 0
    probabilities = np.load(tmp_path / "s.npy")
    assert probabilities.shape == (6, 4, 64)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    decoded = ["".join("ACGT"[i] for i in row) for row in probabilities.argmax(axis=1)]
    assert main([f"ckpt={dna_ckpt}", "n=6", f"out={tmp_path / 's.fa'}", "seed=2"]) == 0
    expected = "".join(f">sample_{i}\n{text}\n" for i, text in enumerate(decoded))
    assert (tmp_path / "s.fa").read_text() == expected
    assert main([f"ckpt={dna_ckpt}", "n=6", f"out={tmp_path / 's.txt'}", "seed=2"]) == 0
    assert (tmp_path / "s.txt").read_text().splitlines() == decoded
    assert main([f"ckpt={dna_ckpt}", "n=50", f"out={tmp_path / 's.png'}"]) == 0
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_text_output_of_data_that_is_not_sequences_is_refused(toy_ckpt, tmp_path, capsys):
    assert main([f"ckpt={toy_ckpt}", "n=5", f"out={tmp_path / 'x' / 's.fasta'}"]) == 2
    err = capsys.readouterr().err
    assert "writes decoded sequences, but the checkpoint's data (ganlab.data.toy.Grid25)" in err
    assert "Valid for it: out=FILE.npy or FILE.png" in err and not (tmp_path / "x").exists()
