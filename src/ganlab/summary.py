"""``summary.json``: the one file per run that tools (ganlab.compare, users' scripts) read.

Every field is documented in the README ("What a run leaves behind").
"""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path
from typing import Any

STATUSES = ("running", "completed", "diverged", "failed", "interrupted", "pruned")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/Infinity; null means "undefined" (e.g. reverse KL with no sample)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> Path:
    """Write ``run_dir/summary.json`` atomically (temporary file, fsync, rename)."""
    if summary.get("status") not in STATUSES:
        raise ValueError(f"summary status must be one of {STATUSES}, got {summary.get('status')!r}")
    path = Path(run_dir) / "summary.json"
    tmp = path.with_name(f".summary.json.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(_jsonable(summary), f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    with open(Path(run_dir) / "summary.json") as f:
        return json.load(f)


def is_alive(summary: dict[str, Any]) -> bool:
    """Whether the process that wrote a ``running`` summary still runs: the summary's ``host`` is this
    machine, a process with its ``pid`` exists (one of another user counts), and that process is ganlab's
    (``ganlab`` in its ``/proc/<pid>/cmdline``, where /proc exists: else the id was reused by another
    program). ``False`` for any other status, and for a summary without ``pid`` or ``host``. A ``running``
    summary whose process is gone is a killed run."""
    pid = summary.get("pid")
    if summary.get("status") != "running" or summary.get("host") != socket.gethostname():
        return False
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    try:
        return b"ganlab" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc").is_dir()  # no /proc (macOS): the id cannot be checked further
    except OSError:
        return True
