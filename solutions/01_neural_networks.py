"""Solutions to the exercises of notebook 01 · Neural networks from scratch. Try each exercise before reading its answer."""

import torch  # the notebook's setup cell imports it; here for readers and the linter


# %% Exercise 1
def count_mlp_parameters(sizes):
    """Weights and biases of an MLP whose Linear layers map sizes[0] -> sizes[1] -> ... -> sizes[-1].

    sizes: a tuple of ints, e.g. (784, 256, 128, 10) for the MLP of section 8. Returns a Python int.
    """
    return sum(m * n + m for n, m in zip(sizes, sizes[1:]))  # Linear(n, m): an m x n weight and m biases


# %% Exercise 2
def backward_batch(X, T, W1, b1, W2, b2):
    """Gradients of L = 1/(2B) * sum of squared errors of the net relu(X @ W1.T + b1) @ W2.T + b2.

    X: (B, n) inputs, T: (B, m) targets, W1: (h, n), b1: (h,), W2: (m, h), b2: (m,).
    Returns a dict with the keys "W1", "b1", "W2", "b2", "X": the gradient of L with respect to each,
    each with the shape of that tensor. Use plain tensor operations, not autograd.
    """
    A = X @ W1.T + b1                          # (B, h)
    H = torch.relu(A)                          # (B, h)
    Y_hat = H @ W2.T + b2                      # (B, m)
    dY = (Y_hat - T) / len(X)                  # (B, m): the 1/B of the mean
    dH = dY @ W2                               # (B, h)
    dA = dH * (A > 0).float()                  # (B, h): ReLU passes the gradient only where A > 0
    return {
        "W2": dY.T @ H,                        # (m, h): the outer products, summed over the batch
        "b2": dY.sum(0),                       # (m,)
        "W1": dA.T @ X,                        # (h, n)
        "b1": dA.sum(0),                       # (h,)
        "X": dA @ W1,                          # (B, n): the gradient that reaches the input
    }


# %% Exercise 3
def cross_entropy_from_logits(logits, labels):
    """Mean cross-entropy of a batch, computed stably from raw scores.

    logits: (B, K) float scores, labels: (B,) int64 class indices in 0..K-1. Returns a scalar tensor, shape ().
    """
    M = logits.max(dim=1, keepdim=True).values                           # (B, 1): each row's largest logit
    shifted = logits - M                                                 # (B, K), every entry <= 0
    log_p = shifted - shifted.exp().sum(dim=1, keepdim=True).log()       # (B, K): log-softmax
    return -log_p[torch.arange(len(labels)), labels].mean()              # ()
