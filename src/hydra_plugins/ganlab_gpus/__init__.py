"""ganlab's Hydra launcher ``hydra/launcher=gpus``: one job per device group on one machine
(:mod:`hydra_plugins.ganlab_gpus.gpus_launcher`). Hydra finds it in the ``hydra_plugins`` namespace package,
from a checkout (``PYTHONPATH=src``, an editable install) and from an installed wheel alike."""
