"""Preprocess scaling: rows/s and peak memory of the Dask preprocess at 1M and 10M rows, vs plain pandas at 1M.

Each run is a fresh subprocess (`python -m trainer preprocess`, ``--scheduler auto`` by default: Dask's
threads; ``--scheduler local`` for a LocalCluster of ``--workers``); peak memory is
the largest summed RSS of its whole process tree (scheduler and workers included), sampled every 0.1 s.
The pandas reference loads everything into one DataFrame and does the same resample/rolling/split/scale.
Prints figures and writes bench/results/preprocess_scale.json.

    .venv-trainer/bin/python bench/preprocess_scale.py [--quick] [--sizes 1000000,10000000] [--scheduler local]
        [--pandas all]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from _results import RESULTS_DIR  # bench/ is on sys.path when a bench runs as a script

PANDAS_REFERENCE = r"""
import glob, json, os, sys
import pandas as pd
src, out = sys.argv[1], sys.argv[2]
df = pd.concat(pd.read_parquet(f) for f in sorted(glob.glob(os.path.join(src, "month=*", "*.parquet"))))
df = df.drop(columns=["anomaly_type"]).set_index("timestamp")
ch = [c for c in df.columns if c != "label"]
frame = df[ch].resample("5min").mean().assign(label=df["label"].resample("5min").max()).dropna()
feats = pd.concat([frame[ch], frame[ch].rolling(12, min_periods=1).mean().add_suffix("__rmean"),
                   frame[ch].rolling(12, min_periods=1).std().fillna(0).add_suffix("__rstd")], axis=1)
n = len(feats); a, b = int(n * 0.7), int(n * 0.85)
train = feats.iloc[:a]
mean, std = train.mean(), train.std().replace(0, 1)
os.makedirs(out, exist_ok=True)
for name, part in (("train", feats.iloc[:a]), ("val", feats.iloc[a:b]), ("test", feats.iloc[b:])):
    ((part - mean) / std).assign(label=frame["label"]).to_parquet(os.path.join(out, name + ".parquet"))
"""


def tree_peak_rss(cmd: list[str]) -> tuple[float, int, str]:
    """Run cmd; return (wall seconds, peak summed RSS bytes of the process tree, stderr tail)."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [parent, *parent.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed:\n{err[-3000:]}")
    return wall, peak, err[-500:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="100k and 1M rows, pandas at 100k")
    p.add_argument("--sizes", default=None, help="comma-separated row counts (default 1000000,10000000)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--scheduler", default="auto", help="preprocess --scheduler (auto, local, threads)")
    p.add_argument(
        "--pandas",
        choices=("first", "all"),
        default="first",
        help="the pandas reference at the first size or all",
    )
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (
        [100_000, 1_000_000] if args.quick else [1_000_000, 10_000_000]
    )  # fmt: skip
    py = sys.executable
    results: dict[str, Any] = {
        "workers": args.workers,
        "scheduler": args.scheduler,
        "resample": "5min",
        "quick": args.quick,
        "dask": {},
        "pandas": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-prep-") as tmp:
        for rows in sizes:
            raw = os.path.join(tmp, f"raw-{rows}")
            t_ing, peak_ing, _ = tree_peak_rss(
                [py, "-m", "trainer", "ingest", "--out", raw, "--rows", str(rows)]
            )
            out = os.path.join(tmp, f"prep-{rows}")
            wall, peak, _ = tree_peak_rss(
                [py, "-m", "trainer", "preprocess", "--data", raw, "--out", out, "--freq", "5min",
                 "--workers", str(args.workers), "--scheduler", args.scheduler]
            )  # fmt: skip
            from trainer.preprocess import pick_scheduler

            picked = pick_scheduler(args.scheduler)
            results["dask"][str(rows)] = {
                "rows": rows,
                "scheduler": picked,
                "seconds": round(wall, 2),
                "rows_per_s": round(rows / wall, 1),
                "peak_rss_mib": round(peak / 2**20, 1),
                "ingest_seconds": round(t_ing, 2),
                "ingest_rows_per_s": round(rows / t_ing, 1),
                "ingest_peak_rss_mib": round(peak_ing / 2**20, 1),
            }
            print(
                f"dask ({picked}) {rows:>11,} rows: {wall:7.1f}s {rows / wall:12,.0f} rows/s  peak {peak / 2**20:7.0f} MiB"
                f"   (ingest {rows / t_ing:,.0f} rows/s, peak {peak_ing / 2**20:.0f} MiB)"
            )
            if rows == sizes[0] or args.pandas == "all":
                ref_out = os.path.join(tmp, f"pandas-{rows}")
                wall_p, peak_p, _ = tree_peak_rss([py, "-c", PANDAS_REFERENCE, raw, ref_out])
                results["pandas"][str(rows)] = {
                    "rows": rows,
                    "seconds": round(wall_p, 2),
                    "rows_per_s": round(rows / wall_p, 1),
                    "peak_rss_mib": round(peak_p / 2**20, 1),
                }
                print(
                    f"pandas {rows:>11,} rows: {wall_p:7.1f}s {rows / wall_p:12,.0f} rows/s  peak {peak_p / 2**20:7.0f} MiB"
                )
    if len(sizes) > 1:
        lo, hi = results["dask"][str(sizes[0])], results["dask"][str(sizes[-1])]
        results["memory_growth_x"] = round(hi["peak_rss_mib"] / lo["peak_rss_mib"], 2)
        results["rows_growth_x"] = round(sizes[-1] / sizes[0], 1)
        print(f"rows x{results['rows_growth_x']} -> dask peak memory x{results['memory_growth_x']}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "preprocess_scale.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
