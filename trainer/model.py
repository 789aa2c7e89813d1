"""The VAE anomaly detector and its self-contained artifact.

Artifact format (one file, ``torch.save`` of a dict, loadable with ``weights_only=True``)::

    {"format": "kubeflow-bridge/vae-anomaly", "version": 1,
     "config": {"input_dim", "hidden_dims", "latent_dim", "beta"},
     "state_dict": {...},                      # tensors of VAE
     "scaler": {"features", "channels", "mean", "std", "window", "freq"},
     "score": {"mix", "mse_scale", "kl_scale"},  # how rows are scored (absent: reconstruction MSE)
     "threshold": float | None, "threshold_source": "val_p99" | "val_best_fc" | ... | None,
     "train": {...final training metrics...}, "evaluation": {...} (after evaluate)}

The anomaly score of a row mixes, as the ISS telemetry design does (its likelihood-MSE mixing factor),
the row's mean squared reconstruction error (through the latent mean) on the scaled features with the KL
divergence of its latent posterior from the prior (how unlikely its encoding is), each divided by its
median on the validation split at training time: ``(1 - mix) * mse / mse_scale + mix * kl / kl_scale``.
``mix`` 0 is the reconstruction error alone. A row is flagged when its score is at or above ``threshold``.
"""

from __future__ import annotations

import io as _bytes_io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

ARTIFACT_FORMAT = "kubeflow-bridge/vae-anomaly"
ARTIFACT_VERSION = 1


class ArtifactError(ValueError):
    """The model artifact is corrupt, of another format, or does not match the data."""


def build_vae(input_dim: int, hidden_dims: list[int], latent_dim: int) -> torch.nn.Module:
    """A fully connected VAE (built lazily so that importing this module needs no torch)."""
    import torch
    from torch import nn

    class VAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            enc: list[nn.Module] = []
            width = input_dim
            for h in hidden_dims:
                enc += [nn.Linear(width, h), nn.GELU()]
                width = h
            self.encoder = nn.Sequential(*enc)
            self.mu = nn.Linear(width, latent_dim)
            self.logvar = nn.Linear(width, latent_dim)
            dec: list[nn.Module] = []
            width = latent_dim
            for h in reversed(hidden_dims):
                dec += [nn.Linear(width, h), nn.GELU()]
                width = h
            dec.append(nn.Linear(width, input_dim))
            self.decoder = nn.Sequential(*dec)

        def forward(
            self, x: torch.Tensor, eps: torch.Tensor | None = None
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            h = self.encoder(x)
            mu, logvar = self.mu(h), self.logvar(h).clamp(-10.0, 10.0)
            z = mu if eps is None else mu + eps * torch.exp(0.5 * logvar)
            return self.decoder(z), mu, logvar

    return VAE()


def vae_loss(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, KL), each a mean over the batch; both terms are per input feature."""
    rec = (recon.float() - x).pow(2).mean()
    kl = (-0.5 * (1 + logvar.float() - mu.float().pow(2) - logvar.float().exp()).sum(1)).mean() / x.shape[1]
    return rec + beta * kl, rec, kl


def score_terms(
    model: torch.nn.Module, x: torch.Tensor, batch: int = 65536, *, with_kl: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (reconstruction MSE through the latent mean, KL of the latent posterior from the prior);
    the KL is empty when ``with_kl`` is False (a score without it need not pay for it)."""
    import numpy as np
    import torch

    mse, kl = [], []
    if model.training:  # eval() walks every module: a serving request must not pay it each time
        model.eval()
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            xb = x[i : i + batch]
            recon, mu, logvar = model(xb)
            mse.append((recon.float() - xb).pow(2).mean(1).cpu().numpy())
            if with_kl:
                kl.append(
                    (-0.5 * (1 + logvar.float() - mu.float().pow(2) - logvar.float().exp()))
                    .sum(1)
                    .cpu()
                    .numpy()
                )
    empty = np.zeros(0, dtype=np.float32)
    return (np.concatenate(mse) if mse else empty), (np.concatenate(kl) if kl else empty)


def score_config(model: torch.nn.Module, x_val: torch.Tensor, mix: float) -> dict[str, float]:
    """The artifact's ``score`` entry: the mix and each term's median on the validation rows."""
    import numpy as np

    mse, kl = score_terms(model, x_val)
    return {
        "mix": float(mix),
        "mse_scale": float(max(np.median(mse), 1e-12)) if mse.size else 1.0,
        "kl_scale": float(max(np.median(kl), 1e-12)) if kl.size else 1.0,
    }


def anomaly_scores(
    model: torch.nn.Module, x: torch.Tensor, score: dict[str, float] | None = None, batch: int = 65536
) -> np.ndarray:
    """Per-row anomaly scores as the artifact's ``score`` entry says (None: the reconstruction MSE)."""
    mixed = bool(score and score.get("mix"))
    mse, kl = score_terms(model, x, batch, with_kl=mixed)
    if not score or not mixed:
        return mse
    mix = float(score["mix"])
    return (1.0 - mix) * mse / float(score["mse_scale"]) + mix * kl / float(score["kl_scale"])


def scale(raw: np.ndarray, scaler: dict[str, Any]) -> np.ndarray:
    import numpy as np

    mean = np.asarray(scaler["mean"], dtype=np.float32)
    std = np.asarray(scaler["std"], dtype=np.float32)
    return ((raw.astype(np.float32) - mean) / std).astype(np.float32)


def unscale(x: np.ndarray, scaler: dict[str, Any]) -> np.ndarray:
    """The raw feature values of scaled rows (the inverse of :func:`scale`)."""
    import numpy as np

    return x * np.asarray(scaler["std"], dtype=np.float32) + np.asarray(scaler["mean"], dtype=np.float32)


def artifact_bytes(artifact: dict[str, Any]) -> bytes:
    import torch

    buf = _bytes_io.BytesIO()
    torch.save(artifact, buf)
    return buf.getvalue()


def save_artifact(uri: str, artifact: dict[str, Any]) -> str:
    from trainer import io

    return io.write_bytes(uri, artifact_bytes(artifact), arg="--model-out")


def load_artifact(uri: str, *, arg: str = "--model") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load and check an artifact; return (model in eval mode, artifact dict).

    Raises:
        ArtifactError: corrupt file, wrong format/version, or weights that do not fit the config.
    """
    import torch

    from trainer import io

    data = io.read_bytes(uri, arg=arg)
    try:
        artifact = torch.load(_bytes_io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ArtifactError(
            f"{arg} {uri!r} is not a readable model artifact ({type(exc).__name__}); "
            "point it at the file `python -m trainer train --model-out` wrote"
        ) from exc
    if not isinstance(artifact, dict) or artifact.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"{arg} {uri!r} is not a {ARTIFACT_FORMAT} artifact; retrain with this trainer")
    if artifact.get("version") != ARTIFACT_VERSION:
        raise ArtifactError(
            f"{arg} {uri!r} has artifact version {artifact.get('version')}, this trainer reads "
            f"{ARTIFACT_VERSION}; retrain or use a matching trainer image"
        )
    cfg, scaler = artifact.get("config") or {}, artifact.get("scaler") or {}
    try:
        model = build_vae(int(cfg["input_dim"]), [int(h) for h in cfg["hidden_dims"]], int(cfg["latent_dim"]))
        model.load_state_dict(artifact["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ArtifactError(
            f"{arg} {uri!r}: weights do not match the stored config ({exc}); retrain"
        ) from exc
    n = int(cfg["input_dim"])
    if (
        len(scaler.get("features", [])) != n
        or len(scaler.get("mean", [])) != n
        or len(scaler.get("std", [])) != n
    ):
        raise ArtifactError(f"{arg} {uri!r}: scaler has not {n} features as the model expects; retrain")
    model.eval()
    return model, artifact
