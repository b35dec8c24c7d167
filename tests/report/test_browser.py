"""report.html in a real browser (Debian's headless ``chromium``): it renders, shows every table and plot,
and loads nothing from outside the page."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from sweepdata import make_run, modes_sweep

from ganlab.compare import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no headless chromium here (Debian: apt-get install chromium; .ci/run installs it)",
)


def chromium(*args: str) -> subprocess.CompletedProcess:
    """Headless chromium with every host name unresolvable: an external load could only fail."""
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


def test_report_renders_every_table_and_plot_and_loads_nothing_external(tmp_path):
    sweep = modes_sweep(tmp_path / "sweep")
    for seed in range(3):
        make_run(
            sweep,
            f"ring_{seed}",
            ["data=ring8", "trainer.max_steps=40", "loss=ns", f"seed={seed}"],
            metrics={"metrics/modes": 7},
        )
    out = tmp_path / "out"
    assert main([str(sweep), "--out", str(out), "--baseline", "loss=hinge"]) == 0
    page = out / "report.html"
    source = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", source)  # no external resource
    dom = chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout
    assert rendered.count("<table") == source.count("<table") >= 6
    images = re.findall(r"<img [^>]*>", rendered)
    assert len(images) == source.count("<img") >= 5  # curves, finals, wall time, samples x 2 environments
    assert all('src="data:image/png;base64,' in img for img in images)
    assert "Environment data=grid25" in rendered and "Environment data=ring8" in rendered
    shot = tmp_path / "report.png"
    assert chromium("--window-size=1300,3000", f"--screenshot={shot}", page.as_uri()).returncode == 0
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
