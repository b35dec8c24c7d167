"""The symbols of sequence data and the map between text and one-hot tensors.

A sequence of length ``L`` over an alphabet of ``A`` symbols is the ``(A, L)`` one-hot tensor whose column
``j`` is the indicator of the ``j``-th symbol (channel ``i`` = the alphabet's ``i``-th symbol). Sequences
shorter than ``L`` are filled up with a pad symbol, one more channel after the alphabet's, that the
sequence metrics ignore. A generator's output (softmax probabilities, or a one-hot sample) decodes by the
most probable channel of each position (argmax).

The vocabulary is written to ``vocabulary.json`` in the run folder and saved in every checkpoint, so that
samples can be decoded without the data (``ganlab.sample ... out=samples.fasta``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

VOCABULARY_FILE = "vocabulary.json"

# named alphabets for data.alphabet (IUPAC one-letter codes of the nucleotides and of the 20 amino acids)
PRESETS = {"dna": "ACGT", "rna": "ACGU", "protein": "ACDEFGHIKLMNPQRSTVWY"}

# the pad symbol of the WGAN-GP language model's data loader (Gulrajani et al. 2017, language_helpers.py)
DEFAULT_PAD = "`"


def alphabet_of(spec: str) -> tuple[str, ...]:
    """The symbols ``data.alphabet`` names: a preset of :data:`PRESETS` (``dna``, ``rna``, ``protein``), else
    every character of ``spec`` in the order written. Refuses an empty alphabet and repeated symbols."""
    text = PRESETS.get(spec, spec)
    if not text:
        raise ValueError(
            f"data.alphabet={spec!r} holds no symbol. Valid: null (the symbols of the data), a preset "
            f"({', '.join(PRESETS)}) or the symbols themselves, e.g. ACGT"
        )
    repeated = sorted({c for c in text if text.count(c) > 1})
    if repeated:
        raise ValueError(f"data.alphabet={spec!r} repeats the symbol(s) {repeated}; list each symbol once")
    return tuple(text)


def codepoints(text: str) -> np.ndarray:
    """The Unicode code points of ``text`` as a ``uint32`` array (one entry per character)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


@dataclass(frozen=True)
class Vocabulary:
    """``alphabet``: the symbols, one character each, in channel order; ``pad``: the pad symbol (channel
    ``len(alphabet)``), or ``None`` when no sequence needed padding; ``length``: the positions of a
    sequence."""

    alphabet: tuple[str, ...]
    length: int
    pad: str | None = None

    def __post_init__(self) -> None:
        if any(len(s) != 1 for s in self.alphabet) or len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError(f"Vocabulary: symbols must be distinct single characters, got {self.alphabet}")
        if self.pad is not None and (len(self.pad) != 1 or self.pad in self.alphabet):
            raise ValueError(
                f"Vocabulary: the pad symbol {self.pad!r} must be one character outside the alphabet"
            )
        if int(self.length) < 1:
            raise ValueError(f"Vocabulary: length must be >= 1, got {self.length}")

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every channel's symbol: the alphabet, then the pad symbol when there is one."""
        return self.alphabet + ((self.pad,) if self.pad is not None else ())

    @property
    def size(self) -> int:
        """The number of channels of a one-hot sequence, ``A``."""
        return len(self.symbols)

    @property
    def pad_index(self) -> int | None:
        """The pad symbol's channel, or ``None``."""
        return len(self.alphabet) if self.pad is not None else None

    @property
    def shape(self) -> tuple[int, int]:
        """One sequence's one-hot shape, ``(A, L)``."""
        return self.size, int(self.length)

    def index_dtype(self) -> torch.dtype:
        """The smallest integer type that holds every channel index."""
        return torch.uint8 if self.size <= 256 else torch.int32

    def lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted code points of :attr:`symbols` and their channel indices, for :func:`numpy.searchsorted`."""
        points = codepoints("".join(self.symbols))
        order = np.argsort(points)
        return points[order], order

    def encode(self, text: str) -> np.ndarray:
        """The channel indices of the symbols of ``text``; ``KeyError`` names the first unknown symbol."""
        points = codepoints(text)
        sorted_points, index = self.lookup()
        where = np.clip(np.searchsorted(sorted_points, points), 0, len(sorted_points) - 1)
        unknown = sorted_points[where] != points
        if unknown.any():
            raise KeyError(text[int(np.argmax(unknown))])
        return index[where]

    @staticmethod
    def indices(x: Tensor) -> Tensor:
        """``(N, L)`` channel indices of one-hot or soft sequences ``(N, A, L)`` (argmax over ``A``); index
        tensors ``(N, L)`` are returned as they are."""
        return x.argmax(dim=1) if x.dim() == 3 else x

    def one_hot(self, indices: Tensor) -> Tensor:
        """``(N, L)`` channel indices -> ``(N, A, L)`` float32 one-hot sequences."""
        hot = torch.nn.functional.one_hot(indices.long(), self.size)
        return hot.permute(0, 2, 1).to(torch.float32)

    def decode(self, x: Tensor, keep_pad: bool = False) -> list[str]:
        """The text of each sequence of ``x`` (one-hot or soft ``(N, A, L)``, or indices ``(N, L)``); pad
        symbols are dropped unless ``keep_pad``."""
        table = np.array(self.symbols)
        rows = table[self.indices(x).detach().cpu().numpy()]
        texts = ["".join(row) for row in rows]
        if keep_pad or self.pad is None:
            return texts
        return [text.replace(self.pad, "") for text in texts]

    def to_dict(self) -> dict[str, Any]:
        return {"alphabet": "".join(self.alphabet), "pad": self.pad, "length": int(self.length)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Vocabulary:
        return cls(tuple(state["alphabet"]), int(state["length"]), state.get("pad"))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """A vocabulary written by :meth:`save`, e.g. ``Vocabulary.load(run / "vocabulary.json")``."""
        return cls.from_dict(json.loads(Path(path).read_text()))
