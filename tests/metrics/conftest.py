"""Fixtures of the feature-metric tests: the digits data module, a cheap fixed feature map, random Inception
weights, private caches."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from ganlab.data.images import Digits
from ganlab.metrics.features import INCEPTION_WEIGHTS_FILE, FeatureExtractor


class Projection(FeatureExtractor):
    """Flattened pixels through a fixed seeded random linear map and tanh: a full-rank 16-d feature network
    that costs nothing, so that the tests can recompute its features independently."""

    name = "projection"

    def __init__(self, in_dim: int = 64, dim: int = 16, seed: int = 0) -> None:
        super().__init__()
        weight = torch.randn(in_dim, dim, generator=torch.Generator().manual_seed(seed)) / in_dim**0.5
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.dim = dim

    def forward(self, images: Tensor) -> Tensor:
        return torch.tanh(images.flatten(1) @ self.weight)


@pytest.fixture(scope="session")
def digits() -> Digits:
    dm = Digits()
    dm.setup("fit")
    return dm


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory):
    """A randomly initialised InceptionV3 state dict saved under the real file's name (nothing can be
    downloaded here): torch-fidelity always loads weights in its constructor, so the loading is skipped
    while the network is built."""
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity_inception

    path = tmp_path_factory.mktemp("hub") / INCEPTION_WEIGHTS_FILE
    with pytest.MonkeyPatch.context() as m:
        m.setattr(fidelity_inception, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(fidelity_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = fidelity_inception.FeatureExtractorInceptionV3("random", ["2048"])
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def projection() -> Projection:
    return Projection()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets its own statistics cache (``$GANLAB_CACHE``), never the user's."""
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path / "stats"))
    return tmp_path / "stats"


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are small: one thread is as fast, and avoids thrashing a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
