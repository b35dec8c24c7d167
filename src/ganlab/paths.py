"""Where ganlab's configs are: :data:`CONF_DIR`.

``conf/`` at the top of the repository is the one copy of the configs. The build ships it inside the
package as ``ganlab/conf`` (the ``ganlab.conf`` mapping of ``package-dir`` in pyproject.toml), where a wheel,
``pip install .`` or an sdist install finds it. A source checkout (the Makefile's editable install, or
``PYTHONPATH=src``) has no ``src/ganlab/conf`` and reads the repository's ``conf/`` beside ``src/``.
``CONF_DIR`` is a real directory because Hydra's ``config_path`` and the key hints of ``ganlab.cli``
(``iterdir``, ``OmegaConf.load``) read files; a ganlab imported from a zip archive is refused.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def find_conf_dir(package: Path) -> Path:
    """The config folder of the ganlab package at ``package`` (the folder of its ``__init__.py``): the
    shipped ``package/conf`` when there is one, else the source checkout's ``conf/`` two levels up."""
    candidates = (package / "conf", package.parent.parent / "conf")
    for conf in candidates:
        if (conf / "train.yaml").is_file():
            return conf
    raise FileNotFoundError(
        f"ganlab's configs (train.yaml) are in none of {', '.join(str(c) for c in candidates)}: an installed "
        "ganlab ships them in ganlab/conf and a source checkout keeps them in conf/ beside src/. Reinstall "
        "ganlab from the repository (pip install .) or run it from a checkout."
    )


CONF_DIR: Path = find_conf_dir(Path(str(files("ganlab"))))
