"""The synthetic DNA benchmark: drawn from the seed, motifs planted at their rates (counted directly in the
decoded text against the exact rate r + (1 - r) 4^-k), uniform background, and bad motifs refused."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ganlab.data.dna import Motif, SyntheticDNA
from ganlab.data.sequences import read_fasta
from ganlab.sample import draw, load_checkpoint, load_generator
from ganlab.sample import main as sample_main
from ganlab.train import train

MOTIFS = [
    {"sequence": "TATAAT", "position": 2, "rate": 0.5},
    {"sequence": "GC", "position": 10, "rate": 0.1},
]


def _loaded(**kwargs) -> SyntheticDNA:
    dm = SyntheticDNA(**{"length": 16, "n_train": 20_000, "n_heldout": 500, "motifs": MOTIFS, **kwargs})
    dm.setup()
    return dm


def test_sequences_are_drawn_from_the_seed():
    a, b, c = _loaded(n_train=50), _loaded(n_train=50), _loaded(n_train=50, seed=1)
    assert a.train_set.x.equal(b.train_set.x) and a.heldout.equal(b.heldout)
    assert not a.train_set.x.equal(c.train_set.x)
    assert a.shape == (4, 16) and a.vocabulary.pad is None and len(a.heldout) == 500


def test_motif_rates_counted_in_the_text_match_the_exact_rates():
    dm = _loaded()
    texts = dm.vocabulary.decode(dm.train_set.x)
    for spec in MOTIFS:
        motif = Motif(**spec)
        observed = sum(t[motif.position : motif.end] == motif.sequence for t in texts) / len(texts)
        exact = spec["rate"] + (1 - spec["rate"]) * 0.25 ** len(spec["sequence"])
        assert motif.expected_rate() == pytest.approx(exact, rel=1e-12)
        assert observed == pytest.approx(exact, abs=5 * math.sqrt(exact * (1 - exact) / len(texts)))


def test_background_bases_are_uniform_outside_the_motifs():
    dm = _loaded()
    texts = dm.vocabulary.decode(dm.train_set.x)
    counts = Counter(t[j] for t in texts for j in (0, 1, 8, 9, 12, 13, 14, 15))
    n = sum(counts.values())
    for base in "ACGT":
        assert counts[base] / n == pytest.approx(0.25, abs=5 * math.sqrt(0.25 * 0.75 / n))


@pytest.mark.parametrize(
    "motifs,match",
    [
        ([{"sequence": "TATAAT", "position": 12, "rate": 0.5}], "spans positions 12..17, outside"),
        ([{"sequence": "TANA", "position": 0, "rate": 0.5}], "must be letters of ACGT"),
        ([{"sequence": "TA", "position": 0, "rate": 1.5}], "rate=1.5 must be in \\[0, 1\\]"),
        ([{"sequence": "TA", "position": 0}], "data.motifs\\[0\\]=.* is invalid"),
        (
            [
                {"sequence": "TATA", "position": 0, "rate": 0.5},
                {"sequence": "GG", "position": 3, "rate": 0.5},
            ],
            "the motifs TATA and GG overlap",
        ),
    ],
)
def test_bad_motifs_are_refused(motifs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticDNA(length=16, motifs=motifs)


def test_command_line_trains_gumbel_output_with_wgan_gp_and_the_samples_decode(tmp_path):
    """``python -m ganlab.train`` on the synthetic DNA set (straight-through Gumbel output, WGAN-GP), then
    ``ganlab.sample ... out=.fasta``, whose records are the generator's argmax-decoded outputs."""
    run = tmp_path / "run"
    overrides = [
        *("data=synthetic_dna", "data.n_train=256", "data.n_heldout=64", "data.length=16"),
        *("data.motifs=[{sequence: TATAAT, position: 4, rate: 0.5}]", "data.batch_size=8"),
        *("model=seq_resnet", "model.z_dim=8", "model.generator.output=gumbel", "fix=wgan_gp"),
        *("model.generator.width=8", "model.generator.depth=1", "model.discriminator.width=8"),
        *("model.discriminator.depth=1", "trainer.max_steps=3", "logger=none", "sample_every=0"),
        *("trainer.enable_progress_bar=false", "callbacks.evaluation.n_samples=100", f"hydra.run.dir={run}"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ganlab.train", *overrides]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["g_steps"] == 3
    assert 0 <= summary["metrics"]["metrics/motif_rate_error"] <= 1
    assert summary["metrics_protocol"]["motifs"]["motifs"] == [["TATAAT", 4, pytest.approx(0.5 + 0.5 / 4096)]]

    ckpt = run / "checkpoints" / "last.ckpt"
    assert sample_main([f"ckpt={ckpt}", "n=20", f"out={tmp_path / 's.fasta'}", "seed=3"]) == 0
    records = read_fasta(tmp_path / "s.fasta")
    generator, _ = load_generator(load_checkpoint(str(ckpt)))
    expected = ["".join("ACGT"[i] for i in row) for row in draw(generator, 20, seed=3).argmax(dim=1).tolist()]
    assert [r.text for r in records] == expected and all(len(t) == 16 for t in expected)
    assert generator.z_dim == 8 + 4 * 16  # the Gumbel noise is part of z


def test_training_moves_the_motif_rate_toward_the_planted_one(make_cfg):
    """The target is known exactly (TATA planted in 80% of the sequences: r = 0.8 + 0.2 / 4^4), so training
    can be checked to approach it: WGAN-GP at a high learning rate cuts the motif rate error by more than
    0.1 between the first evaluation (step 10, error about 0.8: no generated sequence holds the motif) and
    step 60."""
    cfg = make_cfg(
        *("data=synthetic_dna", "data.length=16", "data.motifs=[{sequence: TATA, position: 2, rate: 0.8}]"),
        *("model=seq_resnet", "model.generator.width=16", "model.discriminator.width=16", "fix=wgan_gp"),
        *("optim.g.lr=2e-3", "optim.d.lr=2e-3", "trainer.max_steps=60", "callbacks.evaluation.every=10"),
        "callbacks.evaluation.n_samples=500",
    )
    assert train(cfg)["status"] == "completed"
    with open(Path(cfg.paths.output_dir) / "metrics.csv", newline="") as f:
        errors = {
            int(r["step"]): float(r["metrics/motif_rate_error"])
            for r in csv.DictReader(f)
            if r["metrics/motif_rate_error"]
        }
    assert sorted(errors) == [10, 20, 30, 40, 50, 60]
    assert errors[10] > 0.75 and errors[60] < errors[10] - 0.1
