"""Solutions to the exercises of notebook 06 · EBGAN. Try each exercise before reading its answer."""

# %% Exercise 1
def energy_l2(x, x_hat):
    """Per-sample L2 norm of the reconstruction error, the energy as the paper writes it.

    x, x_hat: (B, C, H, W) images and their reconstructions.
    Returns: (B,), for each image the square root of the sum of its squared pixel errors.
    """
    return (x_hat - x).flatten(1).norm(dim=1)          # (B, C*H*W) -> (B,)


# %% Exercise 2
def square_square_loss(d_real, d_fake, margin):
    """Square-square loss of an energy-based discriminator.

    d_real: (B,) energies of real images; d_fake: (B',) energies of generated images; margin: a float m.
    Returns: () the mean of d_real**2 plus the mean of max(0, m - d_fake)**2, the hinge taken per sample.
    """
    return d_real.pow(2).mean() + (margin - d_fake).clamp_min(0).pow(2).mean()   # hinge per sample, then squared
