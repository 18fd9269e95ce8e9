"""Autoencoder reconstruction score: the unsupervised baseline.

An autoencoder trained on all events (mostly background) reconstructs typical events well;
the reconstruction error is the anomaly score (Heimel et al., SciPost Phys. 6 (2019) 030,
"QCD or What?"; Farina, Nakai & Shih, PRD 101 (2020) 075021). Like every density-type score
it depends on the coordinates (here: the standardised features), and it finds what is
*rare*, not what is *over-dense*: in the LHC Olympics comparison (arXiv:2104.02092) it wins
only at very small signal fractions.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.anomaly.classify import AnomalyResult
from physgen.anomaly.data import AnomalyEvents
from physgen.errors import ConfigError, DataFormatError
from physgen.metrics.classifier import torch_threads

__all__ = ["autoencoder"]

F64 = npt.NDArray[np.float64]


def _network(n_in: int, hidden: int, latent: int) -> Any:
    from torch import nn

    def block(a: int, b: int) -> list[Any]:
        return [nn.Linear(a, b), nn.LeakyReLU(0.1)]

    return nn.Sequential(
        *block(n_in, hidden),
        *block(hidden, hidden),
        nn.Linear(hidden, latent),
        *block(latent, hidden),
        *block(hidden, hidden),
        nn.Linear(hidden, n_in),
    )


def autoencoder(
    events: AnomalyEvents,
    *,
    test: AnomalyEvents | None = None,
    latent: int = 2,
    hidden: int = 64,
    epochs: int = 50,
    patience: int = 5,
    batch_size: int = 512,
    lr: float = 1e-3,
    validation_fraction: float = 0.2,
    seed: int = 0,
    threads: int | None = None,
) -> AnomalyResult:
    """Train an autoencoder (F → hidden → hidden → latent → hidden → hidden → F, LeakyReLU)
    on the standardised features of all events and score each event by its mean squared
    reconstruction error.

    Args:
        events: Training events ``(N, F)`` (scored too).
        test: Events to score.
        latent: Bottleneck width (< F).
        hidden: Hidden width.
        epochs: Epochs at most; training stops after ``patience`` epochs without a lower
            validation loss and keeps the best weights.
        patience: See ``epochs``.
        batch_size: Batch size.
        lr: Adam learning rate.
        validation_fraction: Share of events held out for early stopping.
        seed: Seed of the split, the weights and the batch order.
        threads: Torch threads (None: unchanged).

    Raises:
        ConfigError: ``latent`` not below F, bad training options.
    """

    f = events.n_features
    if not 1 <= latent < f:
        raise ConfigError(f"latent: must be in 1..{f - 1} (below the {f} features), got {latent}")
    if epochs < 1 or patience < 1 or batch_size < 1 or lr <= 0 or not 0 < validation_fraction < 1:
        raise ConfigError(
            "autoencoder: epochs, patience, batch_size >= 1, lr > 0 and validation_fraction in "
            "(0, 1) are required"
        )
    if test is not None and test.n_features != f:
        raise DataFormatError(f"{test.source}: {test.n_features} features, expected {f}")
    with torch_threads(threads):
        return _autoencoder(events, test, latent, hidden, epochs, patience, batch_size, lr,
                            validation_fraction, seed)  # fmt: skip


def _autoencoder(
    events: AnomalyEvents,
    test: AnomalyEvents | None,
    latent: int,
    hidden: int,
    epochs: int,
    patience: int,
    batch_size: int,
    lr: float,
    validation_fraction: float,
    seed: int,
) -> AnomalyResult:
    import torch

    f = events.n_features
    c0 = time.process_time()
    mu, sd = events.features.mean(axis=0), events.features.std(axis=0) + 1e-12
    x = torch.as_tensor((events.features - mu) / sd, dtype=torch.float32)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    n_val = max(1, int(validation_fraction * len(x)))
    val, train = x[perm[:n_val]], x[perm[n_val:]]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _network(f, hidden, latent)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    best, best_state, stale, epochs_run = float("inf"), None, 0, 0
    for epoch in range(1, epochs + 1):
        epochs_run = epoch
        net.train()
        order = torch.as_tensor(rng.permutation(len(train)))
        for i in range(0, len(train), batch_size):
            xb = train[order[i : i + batch_size]]
            loss = ((net(xb) - xb) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            v = float(((net(val) - val) ** 2).mean())
        if v < best - 1e-7:
            best, stale = v, 0
            best_state = {k: t.clone() for k, t in net.state_dict().items()}
        else:
            stale += 1
            if stale >= patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)

    def score(a: F64) -> F64:
        xt = torch.as_tensor((a - mu) / sd, dtype=torch.float32)
        with torch.no_grad():
            out = torch.cat([((net(b) - b) ** 2).mean(dim=1) for b in torch.split(xt, 65536)])
        return out.double().numpy()

    test_scores = score(test.features) if test is not None else None
    info = {"latent": latent, "hidden": hidden, "epochs_run": epochs_run, "best_val_mse": best}
    return AnomalyResult(
        "autoencoder", score(events.features), test_scores, time.process_time() - c0, info
    )
