"""Feature extractors: the Inception weights are never downloaded (a clear error says where to put them),
a local weights file loads and gives the network's own pool3 features, the uint8 mapping is exact, and the
shipped digits network loads, checks its sha256 and refuses foreign images. The domain net is the one the data
module declares; each feature metric declares the direction and range of every value it reports."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch_fidelity.feature_extractor_inceptionv3 as fidelity_inception

from ganlab.data.images import CIFAR10, MNIST, Digits, FashionMNIST, ImageFolder
from ganlab.data.toy import Ring8
from ganlab.metrics import features as features_module
from ganlab.metrics.features import (
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    DomainFeatures,
    InceptionFeatures,
    load_extractor,
    state_dict_sha256,
    to_uint8,
)
from ganlab.metrics.fid import FID
from ganlab.metrics.kid import KID
from ganlab.metrics.prdc import PRDC


@pytest.fixture
def no_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("attempted a download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(fidelity_inception, "load_state_dict_from_url", refuse)


def test_the_url_is_torch_fidelitys():
    assert INCEPTION_WEIGHTS_URL == fidelity_inception.URL_INCEPTION_V3


def test_missing_inception_weights_say_what_to_put_where(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    expected = tmp_path / "torch" / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILE
    with pytest.raises(FileNotFoundError) as default_missing:
        InceptionFeatures()
    for text in (str(expected), INCEPTION_WEIGHTS_URL, "metrics.inception_weights"):
        assert text in str(default_missing.value)
    with pytest.raises(FileNotFoundError) as given_missing:
        load_extractor("inception", "cifar10", tmp_path / "elsewhere.pth")
    assert str(tmp_path / "elsewhere.pth") in str(given_missing.value)
    assert INCEPTION_WEIGHTS_URL in str(given_missing.value)


def test_a_corrupt_inception_file_is_reported(tmp_path, no_download):
    path = tmp_path / INCEPTION_WEIGHTS_FILE
    path.write_bytes(b"truncated")
    with pytest.raises(ValueError, match="corrupt"):
        InceptionFeatures(path)


def test_inception_features_from_a_local_file(inception_weights, tmp_path, monkeypatch, no_download):
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    shutil.copy(inception_weights, tmp_path / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    extractor = load_extractor("inception", "cifar10")  # from the default location
    assert load_extractor("inception", "mnist") is extractor  # one instance per weights file
    assert (extractor.name, extractor.dim) == ("inception-v3-pool3", 2048)
    assert extractor.fingerprint() == state_dict_sha256(extractor)

    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    features = extractor(images)
    assert features.shape == (2, 2048) and features.dtype == torch.float32 and torch.isfinite(features).all()
    (direct,) = extractor.net(to_uint8(images))
    torch.testing.assert_close(features, direct)
    gray = images[:1, :1]
    torch.testing.assert_close(extractor(gray), extractor(gray.repeat(1, 3, 1, 1)))

    extractor.train()
    assert not extractor.training and not extractor.net.training
    fingerprint = extractor.fingerprint()
    with torch.no_grad():
        extractor.net.fc.bias[0] += 1.0
    assert extractor.fingerprint() != fingerprint


def test_to_uint8_inverts_the_uint8_to_unit_range_mapping_of_the_datasets():
    values = torch.arange(256, dtype=torch.uint8)
    served = values.float().div_(127.5).sub_(1.0)  # ganlab.data.base.TensorBatches
    assert torch.equal(to_uint8(served), values)
    assert to_uint8(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]


def test_the_shipped_digits_network(digits):
    extractor = load_extractor("domain", "digits")
    assert isinstance(extractor, DomainFeatures) and load_extractor("domain", "digits") is extractor
    assert extractor.name == "classifier-digits" and extractor.dim == 64
    assert not extractor.training and not extractor.net.training
    assert state_dict_sha256(extractor.net) == extractor.meta["sha256"]
    features = extractor(digits.real_sample(10))
    assert features.shape == (10, 64) and not features.requires_grad
    with pytest.raises(ValueError, match=r"trained on images of shape \(1, 8, 8\)"):
        extractor(torch.zeros(2, 1, 28, 28))
    assert (features_module.ASSETS / "feature_net_digits.pt").stat().st_size < 1_000_000


def test_domain_weights_are_checked_and_missing_ones_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_feature_net.py --dataset cifar10"):
        load_extractor("domain", "cifar10")
    shutil.copy(features_module.ASSETS / "feature_net_digits.pt", tmp_path / "net.pt")
    meta = json.loads((features_module.ASSETS / "feature_net_digits.json").read_text())
    (tmp_path / "net.json").write_text(json.dumps({**meta, "sha256": "0" * 64}))
    with pytest.raises(ValueError, match="does not match the sha256"):
        DomainFeatures("digits", tmp_path / "net.pt")
    with pytest.raises(ValueError, match="unknown feature extractor"):
        load_extractor("vgg", "digits")


def test_extract_runs_the_network_once_per_batch(digits, projection):
    images = digits.real_sample(20)
    first = projection.extract(images)
    assert projection.extract(images) is first
    assert projection.extract(images.clone()) is not first
    images.mul_(0.5)  # changed in place: recomputed
    torch.testing.assert_close(projection.extract(images), projection(images))


def test_metrics_sharing_an_extractor_run_it_once_per_batch(digits, projection):
    calls = []
    projection.register_forward_hook(lambda module, args, output: calls.append(len(args[0])))
    metrics = [FID(projection, digits), KID(projection, digits)]
    for batch in digits.real_sample(300).split(100):
        for metric in metrics:
            metric.update(batch)
    assert calls == [100, 100, 100]


def test_image_sets_declare_their_feature_net():
    """FashionMNIST is an MNIST subclass, but the digit classifier is no feature net for clothes."""
    declared = [cls.feature_net for cls in (Digits, MNIST, FashionMNIST, CIFAR10, ImageFolder, Ring8)]
    assert declared == ["digits", "mnist", None, None, None, None]


def test_the_domain_net_is_the_one_the_data_module_declares():
    class Renamed(Digits):  # the class name no longer picks the net
        pass

    assert FID.from_datamodule(Renamed(), features="domain").features.name == "classifier-digits"


def test_data_without_a_feature_net_is_refused_unless_given_one(tmp_path):
    class Plain(Digits):
        feature_net = None

    with pytest.raises(
        ValueError, match=r"data Plain declares none \(its feature_net is None\).*assets: digits\)"
    ):
        FID.from_datamodule(Plain(), features="domain")
    for suffix in (".pt", ".json"):  # a net of one's own, named after its file
        shutil.copy(features_module.ASSETS / f"feature_net_digits{suffix}", tmp_path / f"mine{suffix}")
    own = FID.from_datamodule(Plain(), features="domain", weights_path=str(tmp_path / "mine.pt"))
    assert own.features.name == "classifier-mine"


DIRECTIONS = {"fid": "min", "kid_mean": "min", "kid_std": "min"} | dict.fromkeys(
    ("precision", "recall", "density", "coverage"), "max"
)


@pytest.mark.parametrize("cls,kwargs", [(FID, {}), (KID, {"subsets": 5, "subset_size": 100}), (PRDC, {})])
def test_each_feature_metric_declares_every_value_it_reports(digits, projection, cls, kwargs):
    metric = cls(projection, digits, n_real=400, **kwargs)
    g = torch.Generator().manual_seed(0)
    metric.update(
        (digits.real_sample(300, seed=1) + 0.3 * torch.randn(300, 1, 8, 8, generator=g)).clamp(-1, 1)
    )
    values, meta = metric.compute(), metric.meta()
    assert set(meta) == set(values)
    assert {k: m.direction for k, m in meta.items()} == {k: DIRECTIONS[k] for k in values}
    for key, value in values.items():
        low, high = meta[key].low, meta[key].high
        assert (low is None or value >= low) and (high is None or value <= high), (key, value)
