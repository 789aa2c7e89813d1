"""Fixtures both test environments share: the headless-browser drivers of the UI tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def run_ui_driver(ui_drivers: Path) -> Callable[..., Any]:
    """``run_ui_driver("pages.js", spec, tmp_path, timeout)``: one of the node drivers on ``spec`` (the
    system's Chromium added), failing with its stderr; what it printed last, as JSON."""
    import json
    import shutil
    import subprocess

    def run(script: str, spec: dict[str, Any], folder: Path, timeout: float = 240) -> Any:
        spec_file = folder / f"{script}.json"
        spec_file.write_text(json.dumps({"chromium": shutil.which("chromium"), **spec}))
        done = subprocess.run(
            ["node", str(ui_drivers / script), str(spec_file)],
            cwd=ui_drivers, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    return run
