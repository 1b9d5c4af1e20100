"""Solutions to the exercises of notebook 02 · Convolutions. Try each exercise before reading its answer."""

import torch  # the notebook's setup cell imports it; here for readers and the linter


# %% Exercise 1
def conv2d_by_hand(image, kernel, stride=1, padding=0):
    """One-channel 2-D convolution (no kernel flip, like F.conv2d) with stride and zero padding.

    image: (H, W), kernel: (k, k). Returns (H_out, W_out), H_out = (H + 2 * padding - k) // stride + 1
    (and the same with W for W_out).
    """
    k = kernel.shape[0]
    height, width = image.shape
    padded = torch.zeros(height + 2 * padding, width + 2 * padding)    # (H + 2P, W + 2P)
    padded[padding:padding + height, padding:padding + width] = image
    out_h = (height + 2 * padding - k) // stride + 1
    out_w = (width + 2 * padding - k) // stride + 1
    out = torch.zeros(out_h, out_w)
    for i in range(out_h):
        for j in range(out_w):
            window = padded[stride * i:stride * i + k, stride * j:stride * j + k]  # (k, k)
            out[i, j] = (window * kernel).sum()
    return out


# %% Exercise 2
def max_pool_by_hand(maps, size=2):
    """Max pooling over non-overlapping size x size blocks, like F.max_pool2d(maps, size).

    maps: (B, C, H, W) with H and W divisible by size. Returns (B, C, H // size, W // size).
    """
    B, C, H, W = maps.shape
    blocks = maps.reshape(B, C, H // size, size, W // size, size)     # block row, row in block, block column, column
    return blocks.amax(dim=(3, 5))                                     # (B, C, H // size, W // size)


# %% Exercise 3
def count_conv_parameters(in_channels, out_channels, kernel_size, bias=True):
    """Weights (and biases, if bias) of nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias), a Python int."""
    weights = out_channels * in_channels * kernel_size * kernel_size  # one k x k slice per input channel, per kernel
    return weights + (out_channels if bias else 0)
