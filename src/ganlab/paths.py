"""Where ganlab's configs are."""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
