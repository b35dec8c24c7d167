"""The sequence metrics on constructed sequences: k-mer JS divergence against k-mers counted directly on
the strings and scipy's Jensen-Shannon distance, memorisation and distinct samples against direct counts,
motif rates against the strings; soft samples decode by argmax; data that is not sequences is refused."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from ganlab.data.dna import Motif, SyntheticDNA
from ganlab.data.toy import Ring8
from ganlab.data.vocabulary import Vocabulary
from ganlab.metrics.kmers import KmerJS
from ganlab.metrics.memorisation import Memorisation
from ganlab.metrics.motifs import MotifRateError

VOCAB = Vocabulary(tuple("ACGT"), 6, "-")
HELDOUT = ["ACGTAC", "AAAAAA", "ACG---", "TTGCA-", "GATTAC"]
FAKE = ["ACGTTT", "CCCCCC", "AC-GTA", "GATTAC", "TACG--", "ACGTAC", "ACGTTT"]
TRAIN = ["ACGTTT", "GGGGGG", "GATTAC", "TTTTTT"]


def indices(texts: list[str]) -> torch.Tensor:
    return torch.tensor(np.stack([VOCAB.encode(t) for t in texts]))


def one_hot(texts: list[str]) -> torch.Tensor:
    return VOCAB.one_hot(indices(texts))


def direct_js(fake: list[str], real: list[str], k: int) -> float:
    """JS in bits of the k-mers counted on the strings (windows with a pad skipped), through scipy."""

    def counts(texts: list[str]) -> Counter:
        return Counter(t[i : i + k] for t in texts for i in range(len(t) - k + 1) if "-" not in t[i : i + k])

    p, q = counts(fake), counts(real)
    words = sorted(set(p) | set(q))
    return jensenshannon([p[w] for w in words], [q[w] for w in words], base=2) ** 2


def test_kmer_js_matches_direct_counting_for_every_k():
    metric = KmerJS(VOCAB, indices(HELDOUT), indices(TRAIN), ks=(1, 2, 3, 4, 5, 6))
    metric.update(one_hot(FAKE[:3]))  # two batches: the state is every batch's sequences
    metric.update(one_hot(FAKE[3:]))
    values = metric.compute()
    for k in range(1, 7):
        assert values[f"kmer_js_{k}"] == pytest.approx(direct_js(FAKE, HELDOUT, k), rel=1e-12, abs=1e-15), k
    assert values["kmer_js"] == pytest.approx(np.mean([direct_js(FAKE, HELDOUT, k) for k in range(1, 7)]))
    # the reference: as many training sequences as generated ones (all 4 of them here)
    pick = torch.randperm(4, generator=torch.Generator().manual_seed(0)).tolist()
    train = [TRAIN[i] for i in pick]
    assert values["kmer_js_real"] == pytest.approx(
        np.mean([direct_js(train, HELDOUT, k) for k in range(1, 7)])
    )


def test_kmer_js_is_zero_for_equal_and_one_for_disjoint_frequencies():
    metric = KmerJS(VOCAB, indices(["ACACAC"]), indices(TRAIN), ks=(1, 2))
    metric.update(one_hot(["CACACA", "ACACAC"]))
    values = metric.compute()
    assert values["kmer_js_1"] == pytest.approx(0.0, abs=1e-15)
    assert values["kmer_js_2"] == pytest.approx(direct_js(["CACACA", "ACACAC"], ["ACACAC"], 2), rel=1e-12)
    metric.reset()
    metric.update(one_hot(["GTGTGT"]))
    assert metric.compute()["kmer_js_1"] == pytest.approx(1.0, rel=1e-12)


def test_soft_samples_decode_to_their_most_probable_symbols():
    """Softmax outputs give the numbers of their argmax one-hot sequences."""
    hot = one_hot(FAKE)
    soft = torch.softmax(
        3.0 * hot + 0.1 * torch.randn(hot.shape, generator=torch.Generator().manual_seed(0)), 1
    )
    results = []
    for x in (hot, soft):
        metric = KmerJS(VOCAB, indices(HELDOUT), indices(TRAIN), ks=(2, 4))
        metric.update(x)
        results.append(metric.compute())
    assert results[0] == results[1]


def test_memorised_and_distinct_fractions_match_direct_counts():
    metric = Memorisation(VOCAB, indices(TRAIN))
    metric.update(one_hot(FAKE))
    values = metric.compute()
    assert values["memorised"] == pytest.approx(sum(t in TRAIN for t in FAKE) / len(FAKE), rel=1e-12)  # 3/7
    assert values["distinct"] == pytest.approx(len(set(FAKE)) / len(FAKE), rel=1e-12)  # 6/7
    assert {k: m.to_json()["direction"] for k, m in metric.meta().items()} == {
        "memorised": "min",
        "distinct": "max",
    }


def test_motif_rate_error_matches_rates_counted_on_the_strings():
    motifs = (Motif("CG", 1, 0.5), Motif("TAC", 3, 0.2))
    metric = MotifRateError(VOCAB, motifs)
    metric.update(one_hot(FAKE))
    observed = [
        sum(t[m.position : m.end] == m.sequence for t in FAKE) / len(FAKE) for m in motifs
    ]  # 3/7, 1/7
    assert metric.rates() == pytest.approx(observed, rel=1e-12)
    expected = [0.5 + 0.5 / 16, 0.2 + 0.8 / 64]
    error = np.mean([abs(f - r) for f, r in zip(observed, expected, strict=True)])
    assert metric.compute()["motif_rate_error"] == pytest.approx(error, rel=1e-12)


def test_the_real_data_itself_scores_near_the_floor_on_synthetic_dna():
    """Training sequences fed as generated ones (those the reference value draws): motif rates within
    binomial noise of the exact ones, 1-mer divergence near 0, and the reference value itself."""
    dm = SyntheticDNA(
        length=32, n_train=4000, n_heldout=2000, motifs=[{"sequence": "TATAAT", "position": 4, "rate": 0.5}]
    )
    kmers, motifs = KmerJS.from_datamodule(dm, ks=(1, 2)), MotifRateError.from_datamodule(dm)
    pick = torch.randperm(4000, generator=torch.Generator().manual_seed(0))[:2000]  # kmer_js_real's draw
    sample = dm.vocabulary.one_hot(dm.train_sequences()[pick])
    for metric in (kmers, motifs):
        metric.update(sample)
    rate = dm.motifs[0].expected_rate()
    assert motifs.compute()["motif_rate_error"] < 4 * math.sqrt(rate * (1 - rate) / 2000)
    values = kmers.compute()
    assert values["kmer_js_1"] < 1e-3 and values["kmer_js_real"] == pytest.approx(
        values["kmer_js"], rel=1e-12
    )


@pytest.mark.parametrize(
    "make", [KmerJS.from_datamodule, Memorisation.from_datamodule, MotifRateError.from_datamodule]
)
def test_data_that_is_not_sequences_is_refused_naming_what_fits(make):
    with pytest.raises(ValueError, match="needs sequence data, but data Ring8 declares no vocabulary"):
        make(Ring8(n_train=64, batch_size=8))


def test_bad_k_no_heldout_and_no_motifs_are_refused():
    with pytest.raises(ValueError, match="ks=\\[1, 7\\] is invalid for sequences of length 6 .*\\[7\\]"):
        KmerJS(VOCAB, indices(HELDOUT), indices(TRAIN), ks=(1, 7))
    with pytest.raises(ValueError, match="data.n_heldout > 0"):
        KmerJS(VOCAB, indices(HELDOUT)[:0], indices(TRAIN))
    with pytest.raises(ValueError, match="plants none. Valid: data=synthetic_dna"):
        MotifRateError.from_datamodule(SyntheticDNA(length=8, n_train=10, n_heldout=2))
