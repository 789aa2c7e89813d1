"""Detection quality under the honest protocol: the VAE against a rolling z-score and an IsolationForest.

For every labelled series this environment has, over 3 seeds: ingest (the series as a team's CSV),
preprocess, train, evaluate, exactly as the workflow runs them (`python -m trainer ...`, in process).
Every detector's threshold is chosen on validation and applied unchanged to test (trainer/metrics.py).
The VAE scores with its default (reconstruction MSE, --score-mix 0) and, for comparison, with the ISS
design's likelihood-MSE mix at 0.5.
Prints a markdown table (mean and min-max over seeds) and writes bench/results/detection_quality.json.

Series found here:
- nab_machine_temperature: NAB realKnownCause/machine_temperature_system_failure (4 labelled failures),
  from the hyperts wheel the trainer env installs.
- wp_log_R_outage1 / wp_log_R_outage2: Prophet's Wikipedia page-view series with a stretch of corrupted
  values (the hyperts copies of Prophet's outlier examples); the label marks the rows that differ from the
  clean series. Real data, injected faults, one event each.
- synthetic: the trainer's own ISS-like telemetry (not real data; for reference).

    .venv-trainer/bin/python bench/detection_quality.py [--quick] [--seeds 0,1,2] [--epochs 20] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR  # bench/ is on sys.path when a bench runs as a script

DETECTORS = ("model", "zscore", "iforest")
FIELDS = ("composite_f1", "roc_auc", "pr_auc")


def hyperts_dir() -> Path:
    from trainer.ingest import nab_csv_path

    return Path(nab_csv_path()).parent


def series(workdir: Path) -> dict[str, tuple[Path, list[str]]]:
    """name -> (CSV path, ingest flags) for every labelled series available."""
    import pandas as pd

    out: dict[str, tuple[Path, list[str]]] = {}
    base = hyperts_dir()
    nab = pd.read_csv(base / "realKnownCause.csv")
    nab.to_csv(workdir / "nab.csv", index=False)
    out["nab_machine_temperature"] = (workdir / "nab.csv", ["--label-column", "anomaly"])
    clean = pd.read_csv(base / "example_wp_log_R.csv")
    for i in (1, 2):
        dirty = pd.read_csv(base / f"example_wp_log_R_outliers{i}.csv")
        merged = dirty.merge(clean, on="ds", suffixes=("", "_clean"))
        merged["label"] = ((merged["y"] - merged["y_clean"]).abs() > 1e-9).astype(int)
        merged = merged.sort_values("ds")
        path = workdir / f"wp{i}.csv"
        merged.rename(columns={"ds": "timestamp"})[["timestamp", "y", "label"]].to_csv(path, index=False)
        out[f"wp_log_R_outage{i}"] = (path, ["--label-column", "label"])
    return out


def trainer(*argv: str) -> dict[str, Any]:
    """Run one trainer step in this process; its TRAINER_SUMMARY."""
    from trainer.__main__ import main
    from trainer.summary import parse_summary

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    if code != 0:
        raise RuntimeError(f"trainer {argv[0]} failed: {err.getvalue()[-2000:]}")
    return parse_summary(out.getvalue())


def run_one(root: Path, source: list[str], seed: int, epochs: int) -> dict[str, Any]:
    raw, prep, model, ev = (str(root / n) for n in ("raw", "prep", "model.pt", "ev"))
    trainer("ingest", "--out", raw, "--seed", str(seed), *source)
    trainer("preprocess", "--data", raw, "--out", prep, "--scheduler", "threads")
    started = time.perf_counter()
    trainer("train", "--data", prep, "--model-out", model, "--epochs", str(epochs), "--seed", str(seed))
    train_seconds = time.perf_counter() - started
    trainer("evaluate", "--data", prep, "--model", model, "--out", ev, "--seed", str(seed))
    metrics = json.loads((root / "ev" / "metrics.json").read_text())
    # The same training scored with the likelihood-MSE mix at 0.5, for the mixing factor's effect.
    mixed_model, mixed_ev = str(root / "mixed.pt"), str(root / "ev-mixed")
    trainer("train", "--data", prep, "--model-out", mixed_model, "--epochs", str(epochs), "--seed", str(seed),
            "--score-mix", "0.5")  # fmt: skip
    trainer("evaluate", "--data", prep, "--model", mixed_model, "--out", mixed_ev, "--seed", str(seed))
    mixed = json.loads((root / "ev-mixed" / "metrics.json").read_text())["detectors"]["model"]
    return {
        "model_mix_0.5": {f: mixed.get(f) for f in FIELDS},
        "train_seconds": train_seconds,
        "test_events": metrics["test_events"],
        "val_events": metrics["val_events"],
        "threshold_source": metrics["threshold_source"],
        "oracle_composite_f1": metrics["oracle_composite_f1"],
        **{d: {f: metrics["detectors"][d].get(f) for f in FIELDS} for d in DETECTORS},
    }


def spread(values: list[float | None]) -> dict[str, float | None]:
    known = [v for v in values if v is not None]
    if not known:
        return {"mean": None, "min": None, "max": None}
    return {"mean": statistics.fmean(known), "min": min(known), "max": max(known)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--only", default="", help="comma-separated series names")
    p.add_argument("--quick", action="store_true", help="one seed, 5 epochs, NAB only")
    p.add_argument("--out", default=str(RESULTS_DIR), help="folder for detection_quality.json")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.only = "0", 5, "nab_machine_temperature"
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        found = series(work)
        found["synthetic"] = (work / "none", ["--rows", "20000", "--end", "2026-02-01T00:00:00Z"])
        for name, (path, flags) in found.items():
            if args.only and name not in args.only.split(","):
                continue
            source = flags if name == "synthetic" else ["--source", str(path), *flags]
            runs = []
            for seed in seeds:
                root = work / f"{name}-{seed}"
                runs.append(run_one(root, source, seed, args.epochs))
                scores = {d: runs[-1][d]["composite_f1"] for d in DETECTORS}
                print(f"{name} seed {seed}: {scores} ({runs[-1]['test_events']} test events)", flush=True)
            results[name] = {
                "runs": runs,
                "real": name != "synthetic",
                **{
                    d: {f: spread([r[d][f] for r in runs]) for f in FIELDS}
                    for d in (*DETECTORS, "model_mix_0.5")
                },
                "train_seconds": spread([r["train_seconds"] for r in runs]),
            }

    def cell(s: dict[str, float | None]) -> str:
        if s["mean"] is None:
            return "n/a"
        return f"{s['mean']:.2f} ({s['min']:.2f}-{s['max']:.2f})"

    lines = [
        "| series | VAE Fc | VAE Fc, mix 0.5 | z-score Fc | IsolationForest Fc | VAE ROC AUC | VAE PR AUC | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name}{'' if r['real'] else ' (synthetic)'} | {cell(r['model']['composite_f1'])} | "
            f"{cell(r['model_mix_0.5']['composite_f1'])} | {cell(r['zscore']['composite_f1'])} | {cell(r['iforest']['composite_f1'])} | "
            f"{cell(r['model']['roc_auc'])} | {cell(r['model']['pr_auc'])} | {cell(r['train_seconds'])} |"
        )
    real = {n: r for n, r in results.items() if r["real"] and r["model"]["composite_f1"]["mean"] is not None}
    beats_z = sum(
        r["model"]["composite_f1"]["mean"] > r["zscore"]["composite_f1"]["mean"] for r in real.values()
    )
    beats_if = sum(
        r["model"]["composite_f1"]["mean"] >= r["iforest"]["composite_f1"]["mean"] for r in real.values()
    )
    verdict = (
        f"Real series that could be evaluated: {len(real)}. The VAE beats the rolling z-score on {beats_z} and matches or beats "
        f"IsolationForest on {beats_if} (mean composite F over seeds {seeds}, threshold from validation)."
    )
    print("\n".join(lines))
    print(verdict)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"seeds": seeds, "epochs": args.epochs, "series": results, "table": lines, "verdict": verdict}
    (out / "detection_quality.json").write_text(json.dumps(doc, indent=2))
    print(f"wrote {out / 'detection_quality.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
