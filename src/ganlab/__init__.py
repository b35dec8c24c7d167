"""ganlab: a config-driven research framework for generative adversarial networks."""

from ganlab import resolvers as _resolvers  # noqa: F401  (registers the config resolvers)

__version__ = "0.1.0"
