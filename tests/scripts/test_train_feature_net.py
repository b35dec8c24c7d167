"""scripts/train_feature_net.py: the shipped digits network reaches its recorded held-out accuracy when
reloaded, and the MNIST path trains reproducibly from IDX files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from fakedata import make_mnist
from ganlab.metrics.features import ASSETS, DomainFeatures, state_dict_sha256

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_feature_net.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_feature_net", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_digits_network_reaches_its_recorded_accuracy(script):
    record = json.loads((ASSETS / "feature_net_digits.json").read_text())
    expected = {"dataset": "digits", "split_seed": 0, "n_train": 1437, "n_held_out": 360}
    assert {key: record[key] for key in expected} == expected
    assert record["epochs"] >= 1 and record["held_out_accuracy"] > 0.95
    net = DomainFeatures("digits").net
    assert state_dict_sha256(net) == record["sha256"]
    train, held_out, _ = script.load_split("digits", split_seed=record["split_seed"])
    assert len(train) == record["n_train"] and len(held_out) == record["n_held_out"]
    assert script.accuracy(net, held_out) == pytest.approx(record["held_out_accuracy"], abs=1e-6)
    assert (ASSETS / "feature_net_digits.pt").stat().st_size < 1_000_000


def test_the_digits_split_is_stratified_and_disjoint(script):
    train, held_out, _ = script.load_split("digits", split_seed=0)
    per_class = torch.bincount(train.y).div(4).tolist()
    assert torch.bincount(held_out.y).tolist() == pytest.approx(per_class, abs=1)
    train_rows = {tuple(row.tolist()) for row in train.x.flatten(1)}
    assert not any(tuple(row.tolist()) in train_rows for row in held_out.x.flatten(1))


def test_mnist_from_idx_files_trains_reproducibly(script, tmp_path):
    make_mnist(tmp_path / "data", n=40)
    args = ["--dataset", "mnist", "--root", str(tmp_path / "data"), "--epochs", "2", "--batch-size", "16"]
    records = [script.main([*args, "--out-dir", str(tmp_path / out)]) for out in ("a", "b")]
    assert records[0]["sha256"] == records[1]["sha256"]
    weights = [(tmp_path / out / "feature_net_mnist.pt").read_bytes() for out in ("a", "b")]
    assert weights[0] == weights[1]
    record = json.loads((tmp_path / "a" / "feature_net_mnist.json").read_text())
    expected = {"n_train": 40, "n_held_out": 5, "epochs": 2, "shape": [1, 28, 28]}
    assert {key: record[key] for key in expected} == expected
    extractor = DomainFeatures("mnist", tmp_path / "a" / "feature_net_mnist.pt")
    assert extractor(torch.zeros(3, 1, 28, 28)).shape == (3, 64)
    _, held_out, _ = script.load_split("mnist", str(tmp_path / "data"))
    assert script.accuracy(extractor.net, held_out) == pytest.approx(record["held_out_accuracy"], abs=1e-6)


def test_mnist_needs_a_root(script):
    with pytest.raises(ValueError, match="--root"):
        script.load_split("mnist")
