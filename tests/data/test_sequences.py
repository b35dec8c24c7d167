"""Sequence files: FASTA and text read into one-hot tensors (checked against a hand encoding), cropping,
splitting and padding, the seeded held-out split, the vocabulary, and bad files refused with the file,
line and symbol named."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from ganlab.config import ConfigError
from ganlab.data.sequences import SequenceFile
from ganlab.data.vocabulary import Vocabulary, alphabet_of
from ganlab.train import train

FASTA = """>first record
ACGT
AC

; a comment
>second
GGGTTTAAACCCGGG
>third
AC
"""


def _loaded(path, **kwargs) -> SequenceFile:
    dm = SequenceFile(path=str(path), batch_size=1, **kwargs)
    dm.setup()
    return dm


def _hand_one_hot(text: str, symbols: str) -> np.ndarray:
    """The (A, L) one-hot of ``text``, built position by position."""
    hot = np.zeros((len(symbols), len(text)))
    for j, symbol in enumerate(text):
        hot[symbols.index(symbol), j] = 1.0
    return hot


def _all_texts(dm: SequenceFile) -> list[str]:
    return dm.vocabulary.decode(torch.cat([dm.train_set.x, dm.heldout]), keep_pad=True)


def test_fasta_records_join_their_lines_and_one_hot_matches_a_hand_encoding(tmp_path):
    (tmp_path / "s.fa").write_text(FASTA)
    dm = _loaded(tmp_path / "s.fa", length=6, longer="split", heldout=0.0)
    vocab = dm.vocabulary
    assert vocab.alphabet == tuple("ACGT") and vocab.pad == "`" and dm.shape == (5, 6)
    # ACGTAC (6), GGGTTTAAACCCGGG split into 6 + 6 + 3, AC: both short pieces padded at their end
    assert sorted(_all_texts(dm)) == sorted(["ACGTAC", "GGGTTT", "AAACCC", "GGG```", "AC````"])
    x, _ = dm.train_set[list(range(len(dm.train_set)))]
    assert x.dtype == torch.float32 and x.shape == (5, 5, 6)
    for sample, text in zip(x, vocab.decode(dm.train_set.x, keep_pad=True), strict=True):
        np.testing.assert_array_equal(sample.numpy(), _hand_one_hot(text, "ACGT`"))


def test_text_lines_are_sequences_and_the_alphabet_is_the_symbols_used(tmp_path):
    (tmp_path / "t.txt").write_text("hello world\n\nab c\n")
    dm = _loaded(tmp_path / "t.txt", length=11, heldout=0.0)
    assert "".join(dm.vocabulary.alphabet) == " abcdehlorw"  # sorted, the space included
    assert sorted(dm.vocabulary.decode(dm.train_set.x)) == ["ab c", "hello world"]  # pads dropped


def test_no_pad_channel_when_no_sequence_is_short(tmp_path):
    (tmp_path / "t.txt").write_text("ACGTAC\nGGTTAA\n")
    dm = _loaded(tmp_path / "t.txt", length=4, alphabet="dna", heldout=0.0)
    assert dm.vocabulary.pad is None and dm.shape == (4, 4)


def test_crops_are_windows_at_offsets_drawn_from_the_seed(tmp_path):
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(50)]
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    crops = {
        seed: _all_texts(_loaded(tmp_path / "t.txt", length=8, heldout=0.0, seed=seed)) for seed in (0, 1)
    }
    for seed, pieces in crops.items():
        offsets = [t.find(p) for t, p in zip(texts, _in_file_order(pieces, texts), strict=True)]
        assert all(o >= 0 for o in offsets), seed
        assert len(set(offsets)) > 10  # not one fixed offset
    assert crops[0] == _all_texts(_loaded(tmp_path / "t.txt", length=8, heldout=0.0, seed=0))
    assert crops[0] != crops[1]


def _in_file_order(pieces: list[str], texts: list[str]) -> list[str]:
    """The crop of each text (each piece is a substring of exactly one text here)."""
    return [next(p for p in pieces if p in t) for t in texts]


def test_heldout_split_is_seeded_disjoint_and_complete(tmp_path):
    (tmp_path / "t.txt").write_text("\n".join(f"{i:04d}" for i in range(100)) + "\n")
    dm = _loaded(tmp_path / "t.txt", length=4, heldout=0.15, seed=3)
    train = dm.vocabulary.decode(dm.train_set.x)
    heldout = dm.vocabulary.decode(dm.heldout)
    assert len(heldout) == 15 and len(train) == 85
    assert Counter(train) + Counter(heldout) == Counter(f"{i:04d}" for i in range(100))
    again = _loaded(tmp_path / "t.txt", length=4, heldout=0.15, seed=3)
    assert again.vocabulary.decode(again.heldout) == heldout
    other = _loaded(tmp_path / "t.txt", length=4, heldout=0.15, seed=4)
    assert other.vocabulary.decode(other.heldout) != heldout


def test_given_alphabets_set_the_channel_order_and_uppercase_reads_soft_masked_bases(tmp_path):
    (tmp_path / "s.fasta").write_text(">a\nacgtTT\n")
    dm = _loaded(tmp_path / "s.fasta", length=6, alphabet="TGCA", uppercase=True, heldout=0.0)
    assert dm.vocabulary.alphabet == tuple("TGCA")
    assert dm.train_set.x.tolist() == [[3, 2, 1, 0, 0, 0]]
    assert alphabet_of("protein") == tuple("ACDEFGHIKLMNPQRSTVWY") and alphabet_of("xy") == ("x", "y")


def test_vocabulary_round_trips_through_json_and_checkpoint_state(tmp_path):
    (tmp_path / "s.fa").write_text(FASTA)
    dm = _loaded(tmp_path / "s.fa", length=6, vocab_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # loading writes nothing
    dm.prepare_data()  # Lightning's hook once training starts
    assert Vocabulary.load(tmp_path / "run" / "vocabulary.json") == dm.vocabulary
    assert Vocabulary.from_dict(dm.state_dict()["vocabulary"]) == dm.vocabulary
    other = Vocabulary(tuple("ACGU"), 6, "`").to_dict()
    with pytest.raises(ValueError, match="the checkpoint's vocabulary .* is not the data's"):
        dm.load_state_dict({"shuffle_seed": 0, "batches_done": 0, "vocabulary": other})


def test_decoding_soft_sequences_takes_the_most_probable_symbol():
    vocab = Vocabulary(tuple("AB"), 3, "-")
    soft = torch.tensor([[[0.6, 0.1, 0.2], [0.3, 0.8, 0.1], [0.1, 0.1, 0.7]]])  # (1, A=3, L=3)
    assert vocab.decode(soft, keep_pad=True) == ["AB-"] and vocab.decode(soft) == ["AB"]
    assert vocab.encode("BA-").tolist() == [1, 0, 2]
    torch.testing.assert_close(vocab.one_hot(torch.tensor([[1, 0, 2]])).argmax(1), torch.tensor([[1, 0, 2]]))


@pytest.mark.parametrize(
    "name,text,kwargs,match",
    [
        ("s.fa", ">a\nACGT\nACNT\n", {"alphabet": "ACGT"}, "s.fa' line 3, column 3: symbol 'N' is not in"),
        (
            "s.fa",
            ">a\nACGT\nacgt\n",
            {"alphabet": "dna"},
            "line 3, column 1: symbol 'a' .*data.uppercase=true",
        ),
        ("s.txt", "AC\nA`C\n", {}, "line 2, column 2: symbol '`' is the pad symbol data.pad='`'"),
        ("s.fa", "", {}, "holds no sequence"),
        ("s.txt", "\n  \n", {}, "holds no sequence"),
        ("s.fa", ">a\n>b\nAC\n", {}, "line 1: the record has no sequence \\(a length of 0\\)"),
        ("s.fa", "ACGT\n>a\nAC\n", {}, "line 1: sequence before the first '>' header"),
        ("s.txt", "AC\n", {"heldout": 0.5}, "gives 1 sequence\\(s\\) .* none is left to train on"),
    ],
)
def test_bad_files_are_refused_naming_file_line_and_symbol(tmp_path, name, text, kwargs, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=match):
        _loaded(tmp_path / name, length=4, **kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"length": 0}, "data.length=0 is invalid"),
        ({"path": "x.csv"}, "must end in one of"),
        ({"longer": "wrap"}, "data.longer='wrap' is invalid; valid: crop, split"),
        ({"heldout": 1.0}, "data.heldout=1.0 is invalid"),
        ({"alphabet": "ACGA"}, "repeats the symbol\\(s\\) \\['A'\\]"),
        ({"alphabet": "ACGT", "pad": "A"}, "data.pad='A' is invalid"),
        ({"alphabet": 1}, "data.alphabet=1 is not text \\(int\\); quote .*data.alphabet=\"'1'\""),
        ({"pad": None}, "data.pad=None is invalid"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceFile(**{"path": "s.fa", "length": 4, **kwargs})


def test_missing_and_non_utf8_files_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a file"):
        _loaded(tmp_path / "missing.fa", length=4)
    (tmp_path / "b.txt").write_bytes(b"AC\xff\xfe\n")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        _loaded(tmp_path / "b.txt", length=4)


def _random_fasta(path, n: int = 60, seed: int = 0) -> None:
    """``n`` records of random DNA of 5 to 20 bases, over two lines each."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for i in range(n):
            text = "".join(rng.choice(list("ACGT"), int(rng.integers(5, 21))))
            f.write(f">seq{i}\n{text[:4]}\n{text[4:]}\n")


def test_a_fasta_run_trains_with_a_gradient_penalty_and_keeps_its_vocabulary(make_cfg, tmp_path):
    """WGAN-GP (its penalty on soft one-hot interpolates) on padded sequences: the vocabulary is in the run
    folder and the checkpoint, the sample text decodes to the alphabet, the sequence metrics are recorded
    with their direction and range (no motif metric on a file)."""
    _random_fasta(tmp_path / "s.fa")
    cfg = make_cfg(
        *("data=sequences", f"data.path={tmp_path / 's.fa'}", "data.length=12", "model=seq_resnet"),
        *("fix=wgan_gp", "trainer.max_steps=2"),
    )
    summary = train(cfg)
    assert summary["status"] == "completed", summary["error"]
    run = Path(cfg.paths.output_dir)
    vocabulary = Vocabulary.load(run / "vocabulary.json")
    assert vocabulary == Vocabulary(tuple("ACGT"), 12, "`")
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert Vocabulary.from_dict(ckpt["SequenceFile"]["vocabulary"]) == vocabulary
    samples = (run / "samples" / "final.txt").read_text().splitlines()
    assert len(samples) == cfg.callbacks.samples.n and all(set(s) <= set("ACGT") for s in samples)
    assert {"metrics/kmer_js", "metrics/kmer_js_6", "metrics/memorised", "metrics/distinct"} <= set(
        summary["metrics"]
    )
    assert "metrics/motif_rate_error" not in summary["metrics"]
    assert summary["metrics_meta"]["metrics/kmer_js"] == {"direction": "min", "range": [0, 1]}
    assert "penalty/gp" in summary["metrics"]


def test_a_bad_file_fails_before_anything_is_written(make_cfg, tmp_path):
    (tmp_path / "s.fa").write_text(">a\nACGT\nACXT\n")
    cfg = make_cfg(
        "data=sequences", f"data.path={tmp_path / 's.fa'}", "data.alphabet=dna", "model=seq_resnet"
    )
    with pytest.raises(ConfigError, match="s.fa' line 3, column 3: symbol 'X' is not in data.alphabet"):
        train(cfg)
    assert not Path(cfg.paths.output_dir).exists()
