"""Mixture of experts: an input-conditioned gate picks backbones, mixing their probabilities.

p(y | x) = sum_b g_b(x) * softmax(z_b)[y], with g = softmax(gate(embeddings)). The gate is
trained by the NLL of the mixture. Unlike NLC, the mixture never sharpens or flattens a
backbone's distribution, it only chooses between them; that is why it can select well but
cannot fix a miscalibrated backbone. The gate starts near uniform (mean of probabilities).
"""

from __future__ import annotations

import numpy as np
import torch

from synergy.ensembles._torch import MLP, generator, to_tensor, train_adam
from synergy.ensembles.base import (
    Ensemble, concat_embeddings, log_softmax, stacked_logits, stacked_probs,
)


class MixtureOfExperts(Ensemble):
    """Gate over the concatenated embeddings -> softmax over backbones -> mixed probabilities.

    hidden=None gives a linear gate; otherwise a one-hidden-layer MLP with `activation`.
    The paper gives no MoE hyper-parameters. Defaults mirror NLC's network (hidden 128, ReLU,
    300 full-batch steps) with Adam lr 1e-3 and no weight decay: the mixture NLL is bounded
    by the gate's log-weights, so a larger step than NLC's is stable and trains the gate
    within the same step budget. The gate's output weights start at 1/10 of the usual init,
    so the starting mixture is close to the mean of probabilities.
    """

    uses_embeddings = True

    def __init__(self, hidden: int | None = 128, activation: str = "relu", lr: float = 1e-3,
                 weight_decay: float = 0.0, steps: int = 300, batch_size: int | None = None,
                 random_state: int | None = 0):
        self.hidden = hidden
        self.activation = activation
        self.lr = lr
        self.weight_decay = weight_decay
        self.steps = steps
        self.batch_size = batch_size
        self.random_state = random_state

    def _fit(self, data):
        gen = generator(self.random_state)
        x = to_tensor(concat_embeddings(data))
        logp = log_softmax(stacked_logits(data))  # (B, n, C)
        logp_y = to_tensor(logp[:, np.arange(data.n_examples), data.labels].T)  # (n, B)
        self.gate_ = MLP(x.shape[1], data.n_backbones, self.hidden, self.activation, gen,
                         out_scale=0.1)

        def loss_fn(rows):
            xb, lb = (x, logp_y) if rows is None else (x[rows], logp_y[rows])
            log_g = torch.log_softmax(self.gate_(xb), dim=1)
            return -torch.logsumexp(log_g + lb, dim=1).mean()

        self.losses_ = train_adam(self.gate_.parameters(), loss_fn, data.n_examples,
                                  steps=self.steps, lr=self.lr, weight_decay=self.weight_decay,
                                  batch_size=self.batch_size, gen=gen)

    def backbone_weights(self, data):
        self._check(data)
        with torch.no_grad():
            g = torch.softmax(self.gate_(to_tensor(concat_embeddings(data))), dim=1)
        return g.double().numpy()

    def _predict_proba(self, data):
        return np.einsum("nb,bnc->nc", self.backbone_weights(data), stacked_probs(data))
