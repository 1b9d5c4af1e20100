"""Solutions to the exercises of notebook 05 · DCGAN. Try each exercise before reading its answer."""

import torch  # the notebook's setup cell imports these; here for readers and the linter
import torch.nn as nn


# %% Exercise 1
def conv_transpose_side(n, kernel, stride=1, padding=0, output_padding=0):
    """Side of the square output of nn.ConvTranspose2d on an n x n input.

    n, kernel, stride, padding, output_padding: ints, as nn.ConvTranspose2d takes them (square kernels).
    Returns: an int, the output's height (= width).
    """
    return (n - 1) * stride - 2 * padding + kernel + output_padding


# %% Exercise 2
def slerp_path(z0, z1, ts, eps=1e-6):
    """Spherical interpolation from z0 to z1 at every t in ts.

    z0, z1: (d,) vectors; ts: (T,) values in [0, 1].
    Returns: (T, d), row i the point at ts[i]; the straight line instead where sin(omega) < eps.
    """
    t = ts[:, None]                                                        # (T, 1)
    cos_omega = (z0 @ z1 / (z0.norm() * z1.norm())).clamp(-1, 1)
    omega = torch.acos(cos_omega)
    if torch.sin(omega) < eps:                                             # (anti)parallel: the arc is the line
        return (1 - t) * z0 + t * z1                                       # (T, d)
    w0 = torch.sin((1 - t) * omega) / torch.sin(omega)                     # (T, 1)
    w1 = torch.sin(t * omega) / torch.sin(omega)                           # (T, 1)
    return w0 * z0 + w1 * z1                                               # (T, d)


# %% Exercise 3
def upsample_block(c_in, c_out):
    """A generator block that doubles the side without a transposed convolution.

    Input (B, c_in, n, n) -> output (B, c_out, 2n, 2n): nearest upsampling x2, a 3x3 convolution
    (stride 1, padding 1, no bias), batch norm, ReLU. Returns an nn.Module, e.g. an nn.Sequential.
    """
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),                       # (B, c_in, 2n, 2n)
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=False),  # (B, c_out, 2n, 2n)
        nn.BatchNorm2d(c_out),
        nn.ReLU(True),
    )
