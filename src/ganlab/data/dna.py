"""A synthetic DNA benchmark with planted motifs, generated from the seed (nothing to download).

Each sequence is ``length`` bases drawn independently and uniformly from ``ACGT``; then each motif ``m``
(a short sequence, a position and a rate) is written over the bases at its position with probability
``rate_m``, independently per sequence and per motif. Motif windows do not overlap, so the statistics of
the data are known exactly; in particular the fraction of sequences that hold motif ``m`` at its position is

    r_m = rate_m + (1 - rate_m) * 4^(-|m|)

(planted, or drawn by chance from the background). The motif metric (``ganlab.metrics.motifs``) measures
how far a generator's rates are from these. The default motifs are classic 6-base sites: the -10 box of
bacterial promoters ``TATAAT``, the EcoRI site ``GAATTC`` and the E-box ``CACGTG``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ganlab.data.sequences import SequenceData
from ganlab.data.vocabulary import PRESETS, Vocabulary

DNA = PRESETS["dna"]


@dataclass(frozen=True)
class Motif:
    """``sequence`` planted at 0-based ``position`` in a fraction ``rate`` of the sequences."""

    sequence: str
    position: int
    rate: float

    @property
    def end(self) -> int:
        return self.position + len(self.sequence)

    def expected_rate(self) -> float:
        """The exact fraction of sequences holding the motif at its position (module docstring)."""
        return self.rate + (1.0 - self.rate) * 4.0 ** -len(self.sequence)


def motifs_of(specs: Sequence[Mapping[str, Any]], length: int) -> tuple[Motif, ...]:
    """``data.motifs`` (a list of ``{sequence, position, rate}``) checked against the sequence length."""
    motifs = []
    for i, spec in enumerate(specs):
        try:
            motif = Motif(str(spec["sequence"]), int(spec["position"]), float(spec["rate"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"SyntheticDNA: data.motifs[{i}]={spec!r} is invalid ({exc!r}); each motif is "
                "{sequence: ACGT..., position: 0-based int, rate: in [0, 1]}"
            ) from exc
        if not motif.sequence or set(motif.sequence) - set(DNA):
            raise ValueError(
                f"SyntheticDNA: data.motifs[{i}].sequence={motif.sequence!r} must be letters of {DNA}"
            )
        if not (0 <= motif.position and motif.end <= length):
            raise ValueError(
                f"SyntheticDNA: data.motifs[{i}] spans positions {motif.position}..{motif.end - 1}, outside "
                f"the sequence's 0..{length - 1} (data.length={length})"
            )
        if not 0.0 <= motif.rate <= 1.0:
            raise ValueError(f"SyntheticDNA: data.motifs[{i}].rate={motif.rate} must be in [0, 1]")
        motifs.append(motif)
    spans = sorted(motifs, key=lambda m: m.position)
    for left, right in zip(spans, spans[1:], strict=False):
        if right.position < left.end:
            raise ValueError(
                f"SyntheticDNA: the motifs {left.sequence} and {right.sequence} overlap (positions "
                f"{left.position}..{left.end - 1} and {right.position}..{right.end - 1}); planted "
                "motifs must not overlap, so that their rates are exact"
            )
    return tuple(motifs)


class SyntheticDNA(SequenceData):
    """``n_train`` training and ``n_heldout`` held-out sequences of ``length`` bases with the planted
    ``motifs`` (module docstring), all drawn from ``seed``."""

    def __init__(
        self,
        length: int = 64,
        n_train: int = 20_000,
        n_heldout: int = 2_000,
        motifs: Sequence[Mapping[str, Any]] = (),
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        for name, value, low in (("length", length, 1), ("n_train", n_train, 1), ("n_heldout", n_heldout, 0)):
            if int(value) < low:
                raise ValueError(f"SyntheticDNA: data.{name}={value} is invalid; valid: an integer >= {low}")
        self.length, self.n_train, self.n_heldout = int(length), int(n_train), int(n_heldout)
        self.motifs = motifs_of(motifs, self.length)
        self.seed = int(seed)

    def read(self) -> tuple[np.ndarray, np.ndarray, Vocabulary]:
        rng = np.random.default_rng(self.seed)
        n = self.n_train + self.n_heldout
        x = rng.integers(0, len(DNA), size=(n, self.length))
        for motif in self.motifs:
            planted = rng.random(n) < motif.rate
            x[planted, motif.position : motif.end] = [DNA.index(base) for base in motif.sequence]
        return x[: self.n_train], x[self.n_train :], Vocabulary(tuple(DNA), self.length)
