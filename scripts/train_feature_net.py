"""Train the domain feature network of a dataset (``ganlab.nets.classifier.Classifier``) and write
``feature_net_<dataset>.pt`` (its state dict) and ``feature_net_<dataset>.json`` (held-out accuracy, split,
epochs, network arguments, sha256 of the weights) into ``src/ganlab/assets`` (``--out-dir``).

- ``digits``: scikit-learn's 1797 digits, split 80/20 stratified by class with ``--split-seed``;
- ``mnist``: the 60k training images, held out on the 10k test images (the IDX files under ``--root``,
  read by ``ganlab.data.images.MNIST``).

Seeded and deterministic on CPU: rerunning with the same arguments (and torch version) rewrites the same
weights. ``python scripts/train_feature_net.py --dataset digits`` takes seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ganlab.data.base import TensorBatches
from ganlab.metrics.features import ASSETS, state_dict_sha256
from ganlab.nets.classifier import Classifier

DEFAULT_EPOCHS = {"digits": 40, "mnist": 5}
NUM_CLASSES = 10  # both datasets are the ten digits


def load_split(
    dataset: str, root: str | None = None, split_seed: int = 0
) -> tuple[TensorBatches, TensorBatches, str]:
    """``(train, held_out, description)``; images are served in [-1, 1] like the GAN's training data."""
    if dataset == "digits":
        from sklearn.model_selection import train_test_split

        from ganlab.data.images import Digits

        x, y = Digits().load()
        train_idx, held_idx = train_test_split(
            torch.arange(len(y)).numpy(), test_size=0.2, stratify=y.numpy(), random_state=split_seed
        )
        train_idx, held_idx = torch.from_numpy(train_idx), torch.from_numpy(held_idx)
        description = f"sklearn digits, stratified 80/20 train_test_split(random_state={split_seed})"
        return TensorBatches(x[train_idx], y[train_idx]), TensorBatches(x[held_idx], y[held_idx]), description
    if dataset == "mnist":
        from ganlab.data.images import MNIST

        if root is None:
            raise ValueError("--dataset mnist needs --root DIR holding MNIST/raw/*-ubyte")
        train, held = (TensorBatches(*MNIST(root, train=flag).load()) for flag in (True, False))
        return train, held, "MNIST train (60k) / held out on MNIST test (10k)"
    raise ValueError(f"unknown dataset {dataset!r}; valid: digits, mnist")


@torch.no_grad()
def accuracy(net: Classifier, data: TensorBatches, batch_size: int = 1000) -> float:
    """Fraction of ``data`` whose arg-max logit is its label."""
    net.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        x, y = data[torch.arange(start, min(start + batch_size, len(data)))]
        correct += int((net(x).argmax(dim=1) == y).sum())
    return correct / len(data)


def train(net: Classifier, data: TensorBatches, epochs: int, seed: int, batch_size: int, lr: float) -> None:
    """Adam on the cross-entropy, reshuffling every epoch with a generator seeded by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=g)
        for start in range(0, len(data), batch_size):
            x, y = data[order[start : start + batch_size]]
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=sorted(DEFAULT_EPOCHS), default="digits")
    parser.add_argument("--root", help="data root of file-based datasets (mnist)")
    parser.add_argument("--epochs", type=int, help=f"default: {DEFAULT_EPOCHS}")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the batch order")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the digits train/held-out split")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out-dir", type=Path, default=ASSETS)
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS[args.dataset]

    train_set, held_out, description = load_split(args.dataset, args.root, args.split_seed)
    shape = tuple(train_set.x.shape[1:])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = Classifier(in_channels=shape[0], num_classes=NUM_CLASSES)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # fastest for so small a net, and the float sums do not depend on the core count
    try:
        train(net, train_set, epochs, args.seed, args.batch_size, args.lr)
    finally:
        torch.set_num_threads(threads)

    record = {
        "dataset": args.dataset,
        "held_out_accuracy": accuracy(net, held_out),
        "train_accuracy": accuracy(net, train_set),
        "split": description,
        "split_seed": args.split_seed,
        "n_train": len(train_set),
        "n_held_out": len(held_out),
        "epochs": epochs,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "shape": list(shape),
        "net": net.config(),
        "sha256": state_dict_sha256(net),
        "torch": torch.__version__,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out_dir / f"feature_net_{args.dataset}.pt")
    (args.out_dir / f"feature_net_{args.dataset}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
