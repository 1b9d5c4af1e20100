"""Solutions to the exercises of notebook 03 · Autoencoders: squeeze, rebuild, generate. Try each exercise before reading its answer."""

import torch  # the notebook's setup cell imports it; here for readers and the linter


# %% Exercise 1
def kl_two_gaussians(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, diag exp(logvar_q)) || N(mu_p, diag exp(logvar_p))) per sample.

    All four inputs are (B, d) tensors. Returns (B,): the KL divergence of each row, summed over the d dimensions.
    """
    variance_ratio = (logvar_q - logvar_p).exp()                      # sigma_q^2 / sigma_p^2, (B, d)
    mean_term = (mu_q - mu_p).pow(2) / logvar_p.exp()                 # (mu_q - mu_p)^2 / sigma_p^2
    return 0.5 * (variance_ratio + mean_term - 1 + logvar_p - logvar_q).sum(1)


# %% Exercise 2
def slerp(z_a, z_b, t):
    """Spherical interpolation between two codes.

    z_a, z_b: (d,) codes that do not point in the same or opposite directions; t: (T,) values in [0, 1].
    Returns (T, d): row k is slerp(z_a, z_b; t[k]), equal to z_a at t = 0 and to z_b at t = 1.
    """
    cos_omega = (z_a @ z_b / (z_a.norm() * z_b.norm())).clamp(-1.0, 1.0)
    omega = torch.arccos(cos_omega)                                   # the angle between the two codes
    t = t.view(-1, 1)                                                 # (T, 1)
    weight_a = torch.sin((1 - t) * omega) / torch.sin(omega)          # (T, 1)
    weight_b = torch.sin(t * omega) / torch.sin(omega)
    return weight_a * z_a + weight_b * z_b                            # (T, d)


# %% Exercise 3
def salt_and_pepper(x, p, generator=None):
    """Replace each pixel, with probability p, by +1 or -1 (each half of the time); keep the rest.

    x: images of any shape with values in [-1, 1]; p: a float in [0, 1]; generator: an optional torch.Generator
    for the random draws. Returns a new tensor of the same shape; x itself is not changed.
    """
    hit = torch.rand(x.shape, generator=generator).to(x.device) < p   # which pixels are replaced
    salt = torch.rand(x.shape, generator=generator).to(x.device) < 0.5
    value = torch.where(salt, 1.0, -1.0).to(x.dtype)                  # +1 (salt) or -1 (pepper)
    return torch.where(hit, value, x)
