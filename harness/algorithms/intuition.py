"""Intuitive Fine-Tuning's temporal residual: SFT whose answer tokens are read through the model's own intuition.

At each answer position the input embedding becomes (1 - lam) * e(y_t) + lam * E_{p(.|y_<t)}[e], the gold token
blended with the embedding the model expected there (its prediction from the position before). SFT then learns to
predict the next gold token from that blend, so the model is trained on what it would have written as well as on
the gold prefix. Departures from the paper: the expected embedding is computed without gradient (one extra forward
pass, no backpropagation through the intuition), and lam is a constant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.algorithms import torch

if TYPE_CHECKING:
    from torch import Tensor


def temporal_residual(token_emb: Tensor, predicted_emb: Tensor, answer: Tensor, lam: float) -> Tensor:
    """Input embeddings (B, T, H) with answer positions blended with the previous position's expected embedding.

    token_emb: (B, T, H) embeddings of the gold tokens; predicted_emb: (B, T, H) expected embedding of the token
    after each position (probabilities @ embedding matrix); answer: (B, T) bool, True at answer tokens.

    >>> e, p = torch.tensor([[[1.0], [2.0], [4.0]]]), torch.tensor([[[0.0], [6.0], [9.0]]])
    >>> temporal_residual(e, p, torch.tensor([[False, True, True]]), 0.5).flatten().tolist()  # 2,4 -> (2+0)/2, (4+6)/2
    [1.0, 1.0, 5.0]
    """
    blended = (1 - lam) * token_emb[:, 1:] + lam * predicted_emb[:, :-1]  # (B, T-1, H)
    out = token_emb.clone()
    out[:, 1:] = torch.where(answer[:, 1:, None], blended, token_emb[:, 1:])
    return out
