"""Training throughput: the trainer's VAE loop vs a naive per-batch DataLoader over pandas rows.

Both loops train the same model (same data, hyperparameters, optimiser and loss) in the same run, on CUDA
when available (bf16 autocast in the trainer's loop), else CPU. Prints figures and writes
bench/results/train_throughput.json.

    .venv-trainer/bin/python bench/train_throughput.py [--quick] [--rows N] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR  # bench/ is on sys.path when a bench runs as a script


def make_data(workdir: str, rows: int) -> str:
    import contextlib
    import io

    from trainer.__main__ import main

    raw, prep = os.path.join(workdir, "raw"), os.path.join(workdir, "prep")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["ingest", "--out", raw, "--rows", str(rows), "--log-level", "WARNING"]) == 0
        assert (
            main(
                [
                    "preprocess",
                    "--data",
                    raw,
                    "--out",
                    prep,
                    "--scheduler",
                    "threads",
                    "--log-level",
                    "WARNING",
                ]
            )
            == 0
        )
    return prep


def naive_loop(df: Any, features: list[str], hp: Any, device: Any, max_batches: int) -> float:
    """What quick code does: a Dataset indexing pandas rows, a DataLoader collating per batch."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    from trainer.model import build_vae, vae_loss

    class RowDataset(Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(df)

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.tensor(df.iloc[i][features].to_numpy(dtype="float32"))

    torch.manual_seed(hp.seed)
    model = build_vae(len(features), list(hp.hidden_dims), hp.latent_dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=hp.lr)
    loader = DataLoader(RowDataset(), batch_size=hp.batch_size, shuffle=True, drop_last=True)
    n, t0 = 0, time.perf_counter()
    for i, xb in enumerate(loader):
        if i >= max_batches:
            break
        xb = xb.to(device)
        eps = torch.randn(xb.shape[0], hp.latent_dim, device=device)
        recon, mu, logvar = model(xb, eps)
        loss, _r, _k = vae_loss(recon, xb, mu, logvar, hp.beta)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += xb.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller data and fewer epochs")
    p.add_argument("--rows", type=int, default=None, help="ingest rows (default 300000; quick 50000)")
    p.add_argument("--epochs", type=int, default=None, help="fast-loop epochs (default 5; quick 2)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args(argv)
    rows = args.rows or (50_000 if args.quick else 300_000)
    epochs = args.epochs or (2 if args.quick else 5)

    import numpy as np
    import pandas as pd
    import torch

    from trainer.train import DistContext, Hyperparameters, fit, load_split

    use_cuda = torch.cuda.is_available() if args.device == "auto" else args.device == "cuda"
    device = torch.device("cuda" if use_cuda else "cpu")
    torch.set_num_threads(1 if device.type == "cpu" else torch.get_num_threads())
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        prep = make_data(tmp, rows)
        scaler = json.loads(Path(prep, "scaler.json").read_text())
        xtr, _y, _t = load_split(prep, "train", scaler)
        xva, _y2, _t2 = load_split(prep, "val", scaler)
    hp = Hyperparameters(epochs=epochs, patience=0, batch_size=args.batch_size)
    ctx = DistContext(device=str(device))
    x_train = torch.from_numpy(xtr).to(device)
    x_val = torch.from_numpy(xva).to(device)
    # Warm-up (CUDA context, kernels) outside the timed run.
    fit(
        Hyperparameters(epochs=1, patience=0, batch_size=args.batch_size),
        x_train[:4096],
        x_val[:512],
        ctx,
        emit=False,
    )
    _model, metrics = fit(hp, x_train, x_val, ctx, emit=False)
    fast = float(metrics["samples_per_second"])
    df = pd.DataFrame(xtr, columns=scaler["features"])
    max_batches = 60 if args.quick else 200
    naive = naive_loop(df, scaler["features"], hp, device, max_batches)
    result = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "bf16_autocast": device.type == "cuda",
        "train_rows": int(xtr.shape[0]),
        "features": int(xtr.shape[1]),
        "batch_size": args.batch_size,
        "epochs": epochs,
        "trainer_samples_per_s": round(fast, 1),
        "naive_samples_per_s": round(naive, 1),
        "naive_batches_timed": max_batches,
        "speedup": round(fast / naive, 1),
        "final_val_loss": round(float(metrics["val_loss"]), 6),
        "quick": args.quick,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    print(
        f"device {result['device_name']}, {result['train_rows']} train rows x {result['features']} features"
    )
    print(f"trainer loop : {fast:12.0f} samples/s")
    print(f"naive loop   : {naive:12.0f} samples/s (DataLoader over pandas rows)")
    print(f"speedup      : {result['speedup']:12.1f}x")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "train_throughput.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
