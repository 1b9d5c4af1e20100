"""Solutions to the exercises of notebook 08 · WGAN: the critic as a distance. Try each exercise before reading its answer."""

import torch  # the notebook's setup cell imports it too


# %% Exercise 1
def wgan_losses(D, real, fake):
    """The critic's and the generator's WGAN losses from one batch of real and one of generated images.

    D: the critic, images (B, ...) -> scores (B,).
    real: (B, ...) real images; fake: (B, ...) generated images, still attached to the generator's graph.
    Returns (d_loss, g_loss), two scalar tensors: d_loss sends gradients to D only, g_loss to the generator.
    """
    d_loss = D(fake.detach()).mean() - D(real).mean()   # detach: the critic's step must not move the generator
    g_loss = -D(fake).mean()                             # no detach: the generator learns through the critic
    return d_loss, g_loss


# %% Exercise 2
def clip_critic_(D, c):
    """Clip every parameter of the module D into [-c, c] in place; return the share of entries at +-c.

    D: an nn.Module; c: a positive float.
    Returns a float in [0, 1]: (number of parameter entries with |w| == c after the clip) / (number of entries).
    """
    at_bound, total = 0, 0
    with torch.no_grad():
        for p in D.parameters():
            p.clamp_(-c, c)
            at_bound += int((p.abs() >= c).sum())
            total += p.numel()
    return at_bound / total


# %% Exercise 3
def one_sided_penalty(D, real, fake, eps):
    """Mean over the batch of max(0, ||grad D(x_hat)||_2 - 1)^2, the norm taken per sample.

    D: the critic, images (B, C, H, W) -> scores (B,).
    real, fake: (B, C, H, W); eps: (B, 1, 1, 1), one mixing weight per sample (x_hat = eps real + (1 - eps) fake).
    Returns a scalar tensor that can be differentiated with respect to D's weights.
    """
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)                    # (B, C, H, W)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)         # (B, C, H, W)
    norms = grad.flatten(1).norm(2, dim=1)                                           # (B,)
    return (norms - 1).clamp(min=0).pow(2).mean()
