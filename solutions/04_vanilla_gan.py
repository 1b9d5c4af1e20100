"""Solutions to the exercises of notebook 04 · Vanilla GAN. Try each exercise before reading its answer."""

import torch
import torch.nn.functional as F


# %% Exercise 1
def minimax_g_loss(fake_logits):
    """The generator's minimax loss, the mean of log(1 - sigmoid(l)) over the batch, computed stably from logits.

    fake_logits: (B, 1) or (B,), D's logits for generated images. Returns a scalar tensor (0-dim).
    """
    # log(1 - sigmoid(l)) = log(sigmoid(-l)) = -softplus(l): no rounding of sigmoid(l) to 1 for large l
    return F.logsigmoid(-fake_logits).mean()


# %% Exercise 2
def d_loss_smoothed(real_logits, fake_logits, real_target=0.9):
    """The discriminator's loss with one-sided label smoothing, from logits.

    real_logits: (B, 1), D's logits for real images, target real_target.
    fake_logits: (B, 1), D's logits for generated images, target 0.
    Returns a scalar tensor: the mean BCE on the real logits plus the mean BCE on the fake logits.
    """
    real_targets = torch.full_like(real_logits, real_target)   # (B, 1), 0.9: only the real side is smoothed
    fake_targets = torch.zeros_like(fake_logits)               # (B, 1), 0 as before
    return (F.binary_cross_entropy_with_logits(real_logits, real_targets)
            + F.binary_cross_entropy_with_logits(fake_logits, fake_targets))


# %% Exercise 3
def optimal_d(log_p_data, log_p_g):
    """The best discriminator D*(x) = p_data / (p_data + p_g), from the two log-densities at the same points.

    log_p_data, log_p_g: (N,) tensors. Returns (N,) values in [0, 1], finite even where both log-densities
    are around -1000 (where exp() underflows to 0).
    """
    # divide numerator and denominator by p_g: D* = 1 / (1 + exp(-(a - b))) = sigmoid(a - b)
    return torch.sigmoid(log_p_data - log_p_g)
