"""``train``: the VAE, alone, under torchrun, or as a PyTorchJob replica (DDP; gloo on CPU, nccl on CUDA).

Data are preloaded as one tensor on the device and batches are index slices of it. Distributed runs are
equivalent to a single process: every rank draws the same permutation and the same reparameterisation
noise for the global batch, takes its strided share (``batch[rank::world]``), and DDP averages gradients,
so the update equals the single-process update on the whole global batch (up to float summation order).
The last incomplete global batch of an epoch is dropped so that shares stay equal.

Prints one Katib StdOut line per epoch (``<RFC 3339> epoch=3 train_loss=0.41 val_loss=0.39``), restores
the best epoch's weights (early stopping on val_loss) and writes the artifact (see trainer.model).
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

log = logging.getLogger("trainer.train")


class HyperparameterError(ValueError):
    """A hyperparameter is out of range."""


@dataclass(frozen=True)
class Hyperparameters:
    """VAE training hyperparameters.

    Attributes:
        latent_dim: size of the latent space, 1..512.
        hidden_dims: widths of the encoder layers (the decoder mirrors them), each 1..8192, 1..8 layers.
        beta: weight of the KL term, 0..100.
        lr: Adam learning rate, (0, 1].
        batch_size: global batch size (split across ranks), 1..1048576.
        epochs: maximum epochs, 1..10000.
        patience: epochs without val_loss improvement before stopping, 0 disables, 0..10000.
        seed: RNG seed.
        score_mix: weight of the latent KL against the reconstruction MSE in the anomaly score, 0..1
            (see :mod:`trainer.model`); it shapes scoring, not training.
    """

    latent_dim: int = 8
    hidden_dims: tuple[int, ...] = (64, 32)
    beta: float = 0.5
    lr: float = 2e-3
    batch_size: int = 256
    epochs: int = 20
    patience: int = 4
    seed: int = 0
    score_mix: float = 0.0

    def validate(self, world_size: int = 1) -> None:
        problems = []
        if not 1 <= self.latent_dim <= 512:
            problems.append(f"--latent-dim must be in [1, 512]; got {self.latent_dim}")
        if not 1 <= len(self.hidden_dims) <= 8 or any(not 1 <= h <= 8192 for h in self.hidden_dims):
            problems.append(f"--hidden-dims must be 1-8 widths in [1, 8192]; got {list(self.hidden_dims)}")
        if not 0 <= self.score_mix <= 1:
            problems.append(f"--score-mix must be in [0, 1]; got {self.score_mix}")
        if not 0 <= self.beta <= 100:
            problems.append(f"--beta must be in [0, 100]; got {self.beta}")
        if not 0 < self.lr <= 1:
            problems.append(f"--lr must be in (0, 1]; got {self.lr}")
        if not 1 <= self.batch_size <= 1 << 20:
            problems.append(f"--batch-size must be in [1, 1048576]; got {self.batch_size}")
        elif self.batch_size < world_size:
            problems.append(
                f"--batch-size {self.batch_size} must be at least the world size {world_size} "
                "(every replica needs a sample per step)"
            )
        if not 1 <= self.epochs <= 10_000:
            problems.append(f"--epochs must be in [1, 10000]; got {self.epochs}")
        if not 0 <= self.patience <= 10_000:
            problems.append(f"--patience must be in [0, 10000]; got {self.patience}")
        if problems:
            raise HyperparameterError("; ".join(problems))


def parse_hidden_dims(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(p) for p in str(text).replace(" ", "").split(",") if p)
    except ValueError as exc:
        raise HyperparameterError(
            f"--hidden-dims {text!r} must be comma-separated integers, e.g. 64,32"
        ) from exc
    if not dims:
        raise HyperparameterError("--hidden-dims is empty; pass e.g. 64,32")
    return dims


def load_split(
    prep_dir: str, split: str, scaler: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scaled features float32 [n, f], labels int8 [n], timestamps datetime64[ns] [n]) of one split."""
    import numpy as np
    import pyarrow.parquet as pq

    from trainer.model import scale

    files = sorted(glob.glob(os.path.join(prep_dir, split, "*.parquet")), key=_part_order)
    if not files:
        raise ValueError(f"the preprocessed data has no {split} split; run preprocess first")
    cols = [*scaler["features"], "label", "timestamp"]
    tables = [pq.read_table(f, columns=cols) for f in files]
    xs, ys, ts = [], [], []
    for t in tables:
        xs.append(np.stack([t.column(c).to_numpy() for c in scaler["features"]], axis=1))
        ys.append(t.column("label").to_numpy().astype(np.int8))
        ts.append(t.column("timestamp").to_numpy().astype("datetime64[ns]"))
    x = np.concatenate(xs) if xs else np.zeros((0, len(scaler["features"])), np.float32)
    return scale(x, scaler), np.concatenate(ys), np.concatenate(ts)


def _part_order(path: str) -> tuple[int, str]:
    stem = os.path.basename(path).split(".")
    return (int(stem[1]) if len(stem) > 2 and stem[1].isdigit() else 0, path)


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_arg: str) -> DistContext:
    """Read RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (torchrun or PyTorchJob) and join the process group."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank if world > 1 else 0)))
    use_cuda = torch.cuda.is_available() if device_arg == "auto" else device_arg == "cuda"
    if device_arg == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available; use --device cpu or auto")
    device = "cpu"
    if use_cuda:
        local_gpu = local_rank % max(1, torch.cuda.device_count())
        torch.cuda.set_device(local_gpu)
        device = f"cuda:{local_gpu}"
    if world > 1:
        import datetime

        import torch.distributed as dist

        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(var):
                raise ValueError(
                    f"WORLD_SIZE={world} but {var} is not set; launch with torchrun or a PyTorchJob"
                )
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(minutes=10),
        )
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def _now() -> str:
    from trainer.summary import utc_now

    return utc_now()


def fit(
    hp: Hyperparameters,
    x_train: torch.Tensor,
    x_val: torch.Tensor,
    ctx: DistContext,
    *,
    checkpoint_dir: str | None = None,
    emit: bool = True,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train; returns (best model, unwrapped, in eval mode; metrics)."""
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    from trainer.model import build_vae, vae_loss

    torch.manual_seed(hp.seed)
    device = torch.device(ctx.device)
    model = build_vae(x_train.shape[1], list(hp.hidden_dims), hp.latent_dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=hp.lr)
    net: torch.nn.Module = DDP(model) if ctx.distributed else model
    start_epoch, best_val, best_epoch, bad, history = 1, float("inf"), 0, 0, []
    best_state = copy.deepcopy(model.state_dict())
    ckpt = _load_checkpoint(checkpoint_dir, device)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        best_state, best_val, best_epoch = ckpt["best_state"], ckpt["best_val"], ckpt["best_epoch"]
        bad, history, start_epoch = ckpt["bad_epochs"], ckpt["history"], ckpt["epoch"] + 1
        log.info("train: resumed from checkpoint at epoch %d", ckpt["epoch"])
    n = x_train.shape[0]
    gb = min(hp.batch_size, n)
    steps = max(1, n // gb)
    autocast = device.type == "cuda"
    g_perm = torch.Generator(device="cpu")
    g_eps = torch.Generator(device=device)
    t_train, samples, stopped_early = 0.0, 0, False
    epoch = start_epoch - 1
    for epoch in range(start_epoch, hp.epochs + 1):
        net.train()
        g_perm.manual_seed(hp.seed * 1_000_003 + epoch)
        g_eps.manual_seed(hp.seed * 1_000_003 + epoch + 7)
        perm = torch.randperm(n, generator=g_perm).to(device)
        t0 = time.perf_counter()
        total = torch.zeros((), device=device)
        for s in range(steps):
            idx = perm[s * gb : (s + 1) * gb]
            eps = torch.randn((gb, hp.latent_dim), generator=g_eps, device=device)
            if ctx.distributed:
                idx, eps = idx[ctx.rank :: ctx.world_size], eps[ctx.rank :: ctx.world_size]
            xb = x_train[idx]
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=autocast):
                recon, mu, logvar = net(xb, eps)
            loss, _rec, _kl = vae_loss(recon, xb, mu, logvar, hp.beta)
            if ctx.distributed:
                # DDP averages gradients over ranks; weighting each rank's batch mean by its share of
                # the global batch makes that average the global-batch mean, even when the batch does
                # not split evenly (256 over 3 replicas), so any replica count trains the same model.
                loss = loss * (xb.shape[0] * ctx.world_size / gb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        if ctx.distributed:
            import torch.distributed as dist

            dist.all_reduce(total)
            total /= ctx.world_size
        train_loss = float(total) / steps
        if device.type == "cuda":
            torch.cuda.synchronize()
        t_train += time.perf_counter() - t0
        samples += steps * gb
        val_loss = evaluate_loss(model, x_val, hp.beta, autocast)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        if emit and ctx.rank == 0:
            print(f"{_now()} epoch={epoch} train_loss={train_loss:.6f} val_loss={val_loss:.6f}", flush=True)
        if val_loss < best_val - 1e-7:
            best_val, best_epoch, bad = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
        if ctx.rank == 0 and checkpoint_dir:
            _save_checkpoint(
                checkpoint_dir, model, opt, epoch, best_state, best_val, best_epoch, bad, history
            )
        if hp.patience and bad >= hp.patience:
            stopped_early = True
            break
    model.load_state_dict(best_state)
    model.eval()
    last = history[-1] if history else {"train_loss": float("nan"), "val_loss": float("nan")}
    metrics = {
        "train_loss": last["train_loss"],
        "val_loss": last["val_loss"],
        "best_val_loss": best_val,
        "best_epoch": best_epoch,
        "epochs_run": epoch,
        "stopped_early": stopped_early,
        "samples_per_second": round(samples / t_train, 1) if t_train > 0 else None,
        "train_seconds": round(t_train, 3),
        "world_size": ctx.world_size,
        "device": ctx.device,
        "history": history,
    }
    return model, metrics


def evaluate_loss(model: torch.nn.Module, x: torch.Tensor, beta: float, autocast: bool) -> float:
    """Validation loss through the latent mean (deterministic, identical on every rank)."""
    import torch

    from trainer.model import vae_loss

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for i in range(0, x.shape[0], 65536):
            xb = x[i : i + 65536]
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=autocast):
                recon, mu, logvar = model(xb)
            loss, _r, _k = vae_loss(recon, xb, mu, logvar, beta)
            total += float(loss) * xb.shape[0]
            count += xb.shape[0]
    return total / max(count, 1)


def _ckpt_uri(checkpoint_dir: str) -> str:
    return f"{checkpoint_dir.rstrip('/')}/checkpoint.pt"


def _load_checkpoint(checkpoint_dir: str | None, device: torch.device) -> dict[str, Any] | None:
    import io as bytes_io

    import torch

    from trainer import io

    if not checkpoint_dir or not io.exists(_ckpt_uri(checkpoint_dir)):
        return None
    data = io.read_bytes(_ckpt_uri(checkpoint_dir), arg="--checkpoint-dir")
    try:
        ckpt: dict[str, Any] = torch.load(bytes_io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"--checkpoint-dir {checkpoint_dir!r} holds an unreadable checkpoint.pt; delete it to start over"
        ) from exc
    return ckpt


def _save_checkpoint(
    checkpoint_dir: str,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    epoch: int,
    best_state: dict[str, Any],
    best_val: float,
    best_epoch: int,
    bad: int,
    history: list[dict[str, Any]],
) -> None:
    import io as bytes_io

    import torch

    from trainer import io

    buf = bytes_io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch,
            "best_state": best_state,
            "best_val": best_val,
            "best_epoch": best_epoch,
            "bad_epochs": bad,
            "history": history,
        },
        buf,
    )
    io.write_bytes(_ckpt_uri(checkpoint_dir), buf.getvalue(), arg="--checkpoint-dir")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from trainer import io

    hp = Hyperparameters(
        latent_dim=args.latent_dim,
        hidden_dims=parse_hidden_dims(args.hidden_dims),
        beta=args.beta,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        score_mix=args.score_mix,
    )
    hp.validate(int(os.environ.get("WORLD_SIZE", "1")))
    io.parse_uri(args.data, arg="--data")
    io.parse_uri(args.model_out, arg="--model-out")
    for name in ("metrics_out", "checkpoint_dir"):
        if getattr(args, name):
            io.parse_uri(getattr(args, name), arg="--" + name.replace("_", "-"))
    if args.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda; got {args.device!r}")
    # Deterministic cuBLAS on CUDA (must be set before the first CUDA call).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import numpy as np
    import torch

    from trainer import tracking
    from trainer.model import ARTIFACT_FORMAT, ARTIFACT_VERSION, anomaly_scores, save_artifact, score_config

    ctx = init_distributed(args.device)
    try:
        # The MLP is small: per-step overhead dominates and extra intra-op threads only spin under load.
        torch.set_num_threads(args.threads or 1)
        torch.use_deterministic_algorithms(True, warn_only=True)
        with io.local_input_dir(args.data, arg="--data") as prep:
            scaler = json.loads(Path(os.path.join(prep, "scaler.json")).read_text())
            xtr, _ytr, _ = load_split(prep, "train", scaler)
            xva, _yva, _ = load_split(prep, "val", scaler)
        if xtr.shape[0] < 2 or xva.shape[0] < 1:
            raise ValueError("the train/val splits are too small to train on; ingest more rows")
        if hp.latent_dim > (cap := max(1, xtr.shape[1] // 2)):
            # A latent as wide as the input lets the VAE learn the identity: anomalies then reconstruct as
            # well as normal rows (on NAB's 3 features a latent of 8 scored ROC AUC 0.24, of 1: 0.99).
            log.warning(
                "train: --latent-dim %d capped at %d, half the %d input features",
                hp.latent_dim,
                cap,
                xtr.shape[1],
            )
            hp = replace(hp, latent_dim=cap)
        device = torch.device(ctx.device)
        x_train = torch.from_numpy(xtr).to(device)
        x_val = torch.from_numpy(xva).to(device)
        log.info(
            "train: %d train rows, %d val rows, %d features on %s",
            xtr.shape[0],
            xva.shape[0],
            xtr.shape[1],
            ctx.device,
        )
        # Rank 0 only: one run per job (a Katib trial's run nests under its tuning run).
        tracked = tracking.start("train") if ctx.rank == 0 else tracking.Run.off()
        tracked.log_params(
            {**asdict(hp), "hidden_dims": ",".join(map(str, hp.hidden_dims)), "world_size": ctx.world_size}
        )
        with tracking.finishing(tracked):
            model, metrics = fit(hp, x_train, x_val, ctx, checkpoint_dir=args.checkpoint_dir)
        result: dict[str, Any] = {"rank": ctx.rank}
        if ctx.rank == 0:
            score = score_config(model, x_val, hp.score_mix)
            val_scores = anomaly_scores(model, x_val, score)
            threshold = float(np.quantile(val_scores, 0.99))
            history = metrics.pop("history")
            model_cpu = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            artifact = {
                "format": ARTIFACT_FORMAT,
                "version": ARTIFACT_VERSION,
                "config": {
                    "input_dim": int(xtr.shape[1]),
                    "hidden_dims": list(hp.hidden_dims),
                    "latent_dim": hp.latent_dim,
                    "beta": hp.beta,
                },
                "state_dict": model_cpu,
                "scaler": scaler,
                "score": score,
                "threshold": threshold,
                "threshold_source": "val_p99",
                "hyperparameters": {**asdict(hp), "hidden_dims": list(hp.hidden_dims)},
                "train": {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool)},
            }
            save_artifact(args.model_out, artifact)
            tracked.log_history(history)
            summary = {k: v for k, v in artifact["train"].items() if k not in ("train_loss", "val_loss")}
            tracked.log_metrics({**summary, "threshold_val_p99": threshold})  # the losses: per epoch
            tracked.set_tags({tracking.MODEL_URI_TAG: args.model_out})
            if args.metrics_out:
                doc = {**metrics, "threshold_val_p99": threshold, "history": history}
                io.write_text(args.metrics_out, json.dumps(doc, indent=2), arg="--metrics-out")
            print(f"{_now()} best_val_loss={metrics['best_val_loss']:.6f}", flush=True)
            result["outputs"] = {"model": args.model_out}
            if args.metrics_out:
                result["outputs"]["metrics"] = args.metrics_out
            result["metrics"] = {
                k: metrics[k]
                for k in (
                    "train_loss",
                    "val_loss",
                    "best_val_loss",
                    "best_epoch",
                    "epochs_run",
                    "samples_per_second",
                )
            }
        return result
    finally:
        if ctx.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = Hyperparameters()
    p.add_argument("--data", required=True, help="preprocess output URI")
    p.add_argument("--model-out", required=True, help="artifact URI (a single file, e.g. .../model.pt)")
    p.add_argument("--metrics-out", default=None, help="final metrics JSON URI")
    p.add_argument("--checkpoint-dir", default=None, help="URI for per-epoch checkpoints (resumes from it)")
    p.add_argument("--latent-dim", type=int, default=d.latent_dim)
    p.add_argument(
        "--score-mix",
        type=float,
        default=d.score_mix,
        help="weight of the latent KL (likelihood) against the reconstruction MSE in the score, 0..1 (default 0)",
    )
    p.add_argument("--hidden-dims", default=",".join(map(str, d.hidden_dims)), help="e.g. 64,32")
    p.add_argument("--beta", type=float, default=d.beta)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch size")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience (0 disables)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads per process (default 1: fastest for this model size)",
    )
