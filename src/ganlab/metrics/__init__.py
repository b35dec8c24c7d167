"""Sample-quality metrics, one per file, each citing its paper. Each metric is a torchmetrics ``Metric``
whose ``update`` takes a batch of generated samples and whose ``compute`` returns a dict of floats."""
