"""Where the benchmarks write their JSON: ``bench/results``, or ``$BENCH_RESULTS`` when set (CI's quick
runs write to a temporary folder, so a developer's full results stay where they are)."""

from __future__ import annotations

import os
from pathlib import Path

RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
