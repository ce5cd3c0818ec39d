"""Small torch helpers: seeded MLPs and one Adam loop shared by the gated methods.

Parameters are drawn from a local ``torch.Generator`` so a fit is reproducible from its
``random_state`` alone, whatever the global torch seed is.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from synergy.ensembles.base import EnsembleError

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu, "gelu": torch.nn.functional.gelu, "tanh": torch.tanh,
}


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name not in ACTIVATIONS:
        raise EnsembleError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _linear(n_in: int, n_out: int, gen: torch.Generator) -> list[torch.nn.Parameter]:
    """PyTorch's default nn.Linear init (uniform +-1/sqrt(fan_in)), drawn from `gen`."""
    bound = 1.0 / math.sqrt(n_in)
    w = torch.empty(n_out, n_in).uniform_(-bound, bound, generator=gen)
    b = torch.empty(n_out).uniform_(-bound, bound, generator=gen)
    return [torch.nn.Parameter(w), torch.nn.Parameter(b)]


class MLP(torch.nn.Module):
    """x -> [Linear -> act] -> Linear; ``hidden=None`` gives a single linear layer.

    ``out_bias`` sets the output bias and ``out_scale`` shrinks the output weights, so the
    initial outputs sit near ``out_bias`` for every input (a known starting ensemble).
    """

    def __init__(self, n_in: int, n_out: int, hidden: int | None, act: str,
                 gen: torch.Generator, out_bias: float = 0.0, out_scale: float = 1.0):
        super().__init__()
        self.act = activation(act)
        layers = [] if hidden is None else [_linear(n_in, hidden, gen)]
        last = _linear(n_in if hidden is None else hidden, n_out, gen)
        with torch.no_grad():
            last[0].mul_(out_scale)
            last[1].fill_(out_bias)
        self.params = torch.nn.ParameterList([p for layer in layers + [last] for p in layer])
        self.hidden = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = list(self.params)
        if self.hidden is not None:
            x = self.act(x @ p[0].T + p[1])
            p = p[2:]
        return x @ p[0].T + p[1]


def generator(random_state: int | None) -> torch.Generator:
    """A private generator; None means seed 0, so every fit is reproducible by default."""
    return torch.Generator().manual_seed(0 if random_state is None else int(random_state))


def train_adam(params, loss_fn: Callable[[torch.Tensor | None], torch.Tensor], n: int, *,
               steps: int, lr: float, weight_decay: float, batch_size: int | None,
               gen: torch.Generator) -> list[float]:
    """Run `steps` Adam steps of ``loss_fn(row_indices)``; returns the loss per step.

    ``batch_size=None`` (or >= n) means full batch, signalled by ``row_indices=None`` so the
    loss can use its tensors without copying them every step. Otherwise rows are visited in
    seeded random permutations, one fresh permutation per pass over the data.
    """
    if steps < 0:
        raise EnsembleError(f"steps must be >= 0, got {steps}")
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    full = batch_size is None or batch_size >= n
    if not full and batch_size < 1:
        raise EnsembleError(f"batch_size must be >= 1 or None, got {batch_size}")
    perm, pos, losses = None, n, []
    for _ in range(steps):
        if full:
            rows = None
        else:
            if pos + batch_size > n:
                perm, pos = torch.randperm(n, generator=gen), 0
            rows, pos = perm[pos:pos + batch_size], pos + batch_size
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(rows)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def to_tensor(a: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)
