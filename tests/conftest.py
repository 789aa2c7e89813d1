"""Fixtures both test environments share: the headless-browser drivers of the UI tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ui_drivers() -> Path:
    """``tests/ui``'s node scripts, with playwright-core installed from the lockfile (the system's
    Chromium must be installed)."""
    import shutil
    import subprocess

    ui_dir = Path(__file__).resolve().parent / "ui"
    if shutil.which("chromium") is None:
        pytest.fail("Debian `chromium` is not installed: `apt-get install -y chromium` (.ci/run does it)")
    if not (ui_dir / "node_modules" / "playwright-core").is_dir():
        subprocess.run(
            ["npm", "ci", "--prefix", str(ui_dir), "--no-audit", "--no-fund"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return ui_dir
