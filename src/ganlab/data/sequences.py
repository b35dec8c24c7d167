"""Discrete sequences (DNA, proteins, text) as one-hot tensors of shape ``(alphabet, length)``.

:class:`SequenceData` is the base of the sequence data modules: it splits the sequences into a training
set and a held-out set (which the sequence metrics compare generated samples with), serves the training
set as one-hot batches (held in memory as symbol indices, :class:`OneHotBatches`) and keeps the
:class:`~ganlab.data.vocabulary.Vocabulary`, written to ``vocabulary.json`` in the run folder when training
starts and saved in every checkpoint. :class:`SequenceFile` reads FASTA or plain text; the synthetic DNA
benchmark is :mod:`ganlab.data.dna`.

A sequence of another length than ``data.length`` is brought to it: a longer one is cropped at a random
offset drawn from the seed (``longer=crop``) or cut into consecutive pieces of ``length`` symbols
(``longer=split``, the last piece possibly shorter); a shorter one (or piece) is filled up at its end with
the pad symbol (``data.pad``), whose channel exists only when some sequence needed it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganlab.data.base import GANDataModule, TensorBatches
from ganlab.data.vocabulary import DEFAULT_PAD, VOCABULARY_FILE, Vocabulary, alphabet_of, codepoints


class OneHotBatches(TensorBatches):
    """Sequences held as ``(N, L)`` symbol indices and served as ``(n, A, L)`` float32 one-hot batches
    (:meth:`Vocabulary.one_hot`): a byte per symbol instead of ``4 A`` bytes."""

    def __init__(self, x: Tensor, y: Tensor, vocabulary: Vocabulary) -> None:
        super().__init__(x, y)
        self.vocabulary = vocabulary

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.vocabulary.size, int(self.x.shape[1])

    def __getitem__(self, index: Tensor) -> tuple[Tensor, Tensor]:
        return self.vocabulary.one_hot(self.x[index]), self.y[index]


class SequenceData(GANDataModule):
    """Base class: subclasses implement :meth:`read`, returning the training and held-out sequences as
    symbol indices and their vocabulary. ``y`` is 0.

    ``vocab_dir``: the folder that receives ``vocabulary.json`` when training starts (``None``: none is
    written). ``motifs`` (for the motif metric): patterns planted at known rates; none here.
    """

    motifs: tuple[Any, ...] = ()

    def __init__(self, vocab_dir: str | None = None, **loader) -> None:
        super().__init__(**loader)
        self.vocab_dir = Path(vocab_dir) if vocab_dir is not None else None
        self.heldout: Tensor | None = None

    def read(self) -> tuple[np.ndarray, np.ndarray, Vocabulary]:
        """``(train, heldout, vocabulary)``: ``(N, L)`` and ``(M, L)`` integer arrays of symbol indices."""
        raise NotImplementedError

    def load(self) -> tuple[Tensor, Tensor]:
        train, heldout, vocabulary = self.read()
        self.vocabulary = vocabulary
        self.shape = vocabulary.shape
        dtype = vocabulary.index_dtype()
        self.heldout = torch.from_numpy(np.asarray(heldout, dtype=np.int64)).to(dtype)
        x = torch.from_numpy(np.asarray(train, dtype=np.int64)).to(dtype)
        return x, torch.zeros(len(x), dtype=torch.long)

    def dataset(self, x: Tensor, y: Tensor) -> TensorBatches:
        return OneHotBatches(x, y, self.vocabulary)

    def prepare_data(self) -> None:
        """Write ``vocabulary.json`` (called by Lightning once training starts, after the run folder was
        written: loading the data writes nothing)."""
        if self.vocab_dir is not None:
            self._loaded_vocabulary().save(self.vocab_dir / VOCABULARY_FILE)

    def train_sequences(self) -> Tensor:
        """Every training sequence as ``(N, L)`` symbol indices, on the CPU."""
        self.setup("fit")
        return self.train_set.x.cpu()

    def state_dict(self) -> dict[str, Any]:
        """The data order's state and the vocabulary; Lightning saves them in each checkpoint."""
        return {**super().state_dict(), "vocabulary": self._loaded_vocabulary().to_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the data order; refuse a checkpoint whose vocabulary is not the data's (its samples
        would decode to other symbols)."""
        saved = state_dict.get("vocabulary")
        if saved is not None and Vocabulary.from_dict(saved) != self._loaded_vocabulary():
            raise ValueError(
                f"{type(self).__name__}: the checkpoint's vocabulary {saved} is not the data's "
                f"{self.vocabulary.to_dict()}: the data changed since the checkpoint was saved"
            )
        super().load_state_dict(state_dict)

    def _loaded_vocabulary(self) -> Vocabulary:
        self.setup("fit")
        return self.vocabulary


@dataclass
class Record:
    """One sequence of a file: its text, the line it starts on (a FASTA header, or its own line) and where
    each of its lines starts, ``(offset in text, line number)``, to name the line of any symbol."""

    text: str
    line: int
    starts: list[tuple[int, int]] = field(default_factory=list)

    def line_of(self, offset: int) -> tuple[int, int]:
        """``(line, column)`` (both 1-based) of the symbol at ``offset`` of :attr:`text`."""
        k = bisect.bisect_right([s for s, _ in self.starts], offset) - 1
        start, line = self.starts[k]
        return line, offset - start + 1


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not UTF-8 text ({exc})") from exc


def read_fasta(path: Path) -> list[Record]:
    """The records of a FASTA file: a line ``>name`` starts one, its sequence is the following lines
    joined (surrounding whitespace stripped); blank lines and ``;`` comments are skipped."""
    records: list[Record] = []
    for number, raw in enumerate(_lines(path), start=1):
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            records.append(Record("", number))
            continue
        if not records:
            raise ValueError(f"{str(path)!r} line {number}: sequence before the first '>' header of FASTA")
        record = records[-1]
        record.starts.append((len(record.text), number))
        record.text += line
    for record in records:
        if not record.text:
            raise ValueError(
                f"{str(path)!r} line {record.line}: the record has no sequence (a length of 0); remove it"
            )
    return records


def read_text(path: Path) -> list[Record]:
    """One sequence per line, every character a symbol (the line break excluded); blank lines are
    skipped."""
    return [Record(line, n, [(0, n)]) for n, line in enumerate(_lines(path), start=1) if line.strip()]


READERS = {".fa": read_fasta, ".fasta": read_fasta, ".fna": read_fasta, ".faa": read_fasta, ".txt": read_text}
LONGER = ("crop", "split")


class SequenceFile(SequenceData):
    """The sequences of a FASTA (``.fa``, ``.fasta``, ``.fna``, ``.faa``) or text (``.txt``, one per line)
    file at ``path``, brought to ``length`` symbols (module docstring).

    ``alphabet``: ``None`` (the sorted symbols the file uses), a preset (``dna``, ``rna``, ``protein``) or the
    symbols themselves (``ACGT``); a symbol outside a given alphabet is an error naming the file, line,
    column and symbol. ``uppercase`` reads lowercase letters as uppercase (soft-masked FASTA). ``pad``: the
    pad symbol, which the file must not use. ``heldout``: the fraction of the sequences (after cropping or
    splitting) kept out of training for the metrics, drawn from ``seed`` (at least one when > 0).
    """

    def __init__(
        self,
        path: str,
        length: int,
        alphabet: str | None = None,
        uppercase: bool = False,
        pad: str = DEFAULT_PAD,
        longer: str = "crop",
        heldout: float = 0.1,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.path = Path(path).expanduser()
        if self.path.suffix.lower() not in READERS:
            raise ValueError(
                f"SequenceFile: data.path={str(self.path)!r} must end in one of {sorted(READERS)}"
            )
        if int(length) < 1:
            raise ValueError(f"SequenceFile: data.length={length} is invalid: a length of at least 1 symbol")
        if longer not in LONGER:
            raise ValueError(f"SequenceFile: data.longer={longer!r} is invalid; valid: {', '.join(LONGER)}")
        if not 0 <= float(heldout) < 1:
            raise ValueError(f"SequenceFile: data.heldout={heldout} is invalid; valid: a fraction in [0, 1)")
        for key, value in (("alphabet", alphabet), ("pad", pad)):
            if value is not None and not isinstance(value, str):
                raise ValueError(
                    f"SequenceFile: data.{key}={value!r} is not text ({type(value).__name__}); quote symbols "
                    f"that read as a number on the command line: data.{key}=\"'{value}'\""
                )
        self.given = alphabet_of(alphabet) if alphabet is not None else None
        if pad is None or len(pad) != 1 or (self.given and pad in self.given):
            raise ValueError(
                f"SequenceFile: data.pad={pad!r} is invalid; valid: one character outside the alphabet"
            )
        self.length, self.pad, self.longer = int(length), pad, longer
        self.uppercase, self.heldout_fraction, self.seed = bool(uppercase), float(heldout), int(seed)

    def read(self) -> tuple[np.ndarray, np.ndarray, Vocabulary]:
        if not self.path.is_file():
            raise FileNotFoundError(f"SequenceFile: data.path={str(self.path)!r} is not a file")
        records = READERS[self.path.suffix.lower()](self.path)
        if not records:
            raise ValueError(f"SequenceFile: {str(self.path)!r} holds no sequence")
        if self.uppercase:
            for record in records:
                record.text = record.text.upper()
        alphabet = self.given or tuple(sorted(set().union(*(set(r.text) for r in records))))
        self._check_symbols(records, alphabet)
        full = Vocabulary(alphabet, self.length, self.pad)
        pieces = [full.encode(text) for text in self._cut(records)]
        padded = any(len(p) < self.length for p in pieces)
        vocabulary = Vocabulary(alphabet, self.length, self.pad if padded else None)
        x = np.full((len(pieces), self.length), full.pad_index, dtype=np.int64)
        for row, piece in zip(x, pieces, strict=True):
            row[: len(piece)] = piece
        return (*self._split(x), vocabulary)

    def _check_symbols(self, records: list[Record], alphabet: tuple[str, ...]) -> None:
        """Every symbol in the alphabet and none the pad symbol; else an error naming line and symbol."""
        allowed = codepoints("".join(alphabet))
        for record in records:
            points = codepoints(record.text)
            bad = ~np.isin(points, allowed) | (points == ord(self.pad))
            if not bad.any():
                continue
            offset = int(np.argmax(bad))
            symbol, (line, column) = record.text[offset], record.line_of(offset)
            where = f"SequenceFile: {str(self.path)!r} line {line}, column {column}: symbol {symbol!r}"
            if symbol == self.pad:
                raise ValueError(
                    f"{where} is the pad symbol data.pad={self.pad!r}; choose a pad symbol the file does "
                    "not use"
                )
            hint = " (or data.uppercase=true)" if symbol.upper() in alphabet else ""
            raise ValueError(
                f"{where} is not in data.alphabet ({''.join(alphabet)}). Valid: those symbols; fix the file, "
                f"or widen data.alphabet{hint}"
            )

    def _cut(self, records: list[Record]) -> list[str]:
        """The records brought to at most ``length`` symbols: cropped at a seeded offset or split."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 1]))
        n, pieces = self.length, []
        for text in (r.text for r in records):
            if len(text) <= n:
                pieces.append(text)
            elif self.longer == "split":
                pieces += [text[i : i + n] for i in range(0, len(text), n)]
            else:
                start = int(rng.integers(0, len(text) - n + 1))
                pieces.append(text[start : start + n])
        return pieces

    def _split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(train, heldout)`` rows of ``x``: a permutation drawn from ``seed`` puts the first
        ``max(1, round(heldout * N))`` (none when ``heldout`` is 0) into the held-out set."""
        n = len(x)
        n_heldout = max(1, round(self.heldout_fraction * n)) if self.heldout_fraction > 0 else 0
        if n - n_heldout < 1:
            raise ValueError(
                f"SequenceFile: {str(self.path)!r} gives {n} sequence(s) of length {self.length}, and "
                f"data.heldout={self.heldout_fraction} keeps {n_heldout} for evaluation: none is left to "
                "train on"
            )
        order = np.random.default_rng(np.random.SeedSequence([self.seed, 2])).permutation(n)
        return x[order[n_heldout:]], x[order[:n_heldout]]
