"""Solutions to the exercises of notebook 09 · GAN pitfalls. Try each exercise before reading its answer."""

import math  # the notebook's setup cell imports these; here for readers and the linter

import torch
import torch.nn.functional as F


# %% Exercise 1
def d_loss_from_logits(real_logits, fake_logits):
    """The discriminator's loss -[log D(x) + log(1 - D(G(z)))], computed stably from the logits.

    real_logits: (B,) logits of real images; fake_logits: (B,) logits of generated images.
    Returns a scalar tensor (shape ()): the mean over the real images plus the mean over the generated ones,
    equal to BCEWithLogitsLoss(real_logits, ones) + BCEWithLogitsLoss(fake_logits, zeros), finite for any logit.
    """
    real_term = F.softplus(-real_logits).mean()   # -log sigmoid(l) = softplus(-l)
    fake_term = F.softplus(fake_logits).mean()    # -log(1 - sigmoid(l)) = softplus(l)
    return real_term + fake_term


# %% Exercise 2
def guard(step, **losses):
    """Stop training at the first loss that is not finite, with a message that says where.

    step: the training step (an int); losses: named scalar losses, tensors of shape () or floats,
    e.g. guard(7, d_loss=d_loss, g_loss=g_loss).
    Returns None when every loss is finite. Otherwise raises FloatingPointError whose message names the
    first loss that is not finite, its value (nan, inf or -inf) and the step.
    """
    for name, value in losses.items():
        value = float(value)
        if not math.isfinite(value):              # False for nan, inf and -inf
            raise FloatingPointError(f"{name} became {value} at step {step}: stop, and look at the learning rate "
                                     "and at how the loss is computed (from logits?)")


# %% Exercise 3
def coverage(counts, share=0.05):
    """How many classes receive at least `share` of all the samples.

    counts: the class counts, a list or a tensor of shape (K,) (K = 10 for digits), e.g. from torch.bincount.
    Returns a Python int between 0 and K.
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)   # (K,)
    return int((counts >= share * counts.sum()).sum())


# %% Exercise 4
def minibatch_std_channel(x):
    """Append the batch's spread to a batch of feature maps as one constant channel.

    x: (B, C, H, W) feature maps, B >= 2.
    Returns (B, C + 1, H, W): the first C channels are x unchanged; the last channel holds, at every pixel
    of every image, s = the mean over channels and pixels of the standard deviation over the batch.
    """
    s = x.std(dim=0).mean()                        # std over the batch: (C, H, W); its mean: one number
    channel = s.expand(x.shape[0], 1, *x.shape[2:])  # (B, 1, H, W), every entry s
    return torch.cat([x, channel], dim=1)          # (B, C + 1, H, W)
