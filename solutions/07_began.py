"""Solutions to the exercises of notebook 07 · BEGAN. Try each exercise before reading its answer."""

import torch  # the notebook's setup cell imports it; here for readers and the linter


# %% Exercise 1
def controller_path(l_real, l_fake, gamma, lambda_k, k0=0.0):
    """The controller's k after each of T steps.

    l_real, l_fake: (T,) tensors, the batch losses L(x) and L(G(z)) of each step.
    gamma, lambda_k: floats; k0: k before the first step (float).
    Returns a (T,) float tensor: entry t is k after step t, clipped to [0, 1] at every step.
    """
    k, path = float(k0), []
    for l_x, l_g in zip(l_real.tolist(), l_fake.tolist()):
        k = min(max(k + lambda_k * (gamma * l_x - l_g), 0.0), 1.0)   # one step, clipped at once
        path.append(k)
    return torch.tensor(path)


# %% Exercise 2
def m_stalls(l_real, l_fake, gamma, window):
    """M at every step, and whether it has stalled.

    l_real, l_fake: (T,) tensors, the batch losses of each step, with T >= 2 * window.
    gamma: float; window: int, the steps in each of the two windows compared.
    Returns (M, stalled): M a (T,) tensor, stalled a bool (True when the last window's mean of M is not
    lower than the mean of the window just before it).
    """
    M = l_real + (gamma * l_real - l_fake).abs()                              # (T,)
    last, before = M[-window:].mean(), M[-2 * window:-window].mean()
    return M, bool(last >= before)


# %% Exercise 3
def reconstruction_loss_eta(v, v_rebuilt, eta=1):
    """The paper's L(v) = mean over pixel values of |v - D(v)| ** eta, per image.

    v, v_rebuilt: (B, C, H, W) tensors; eta: 1 or 2.
    Returns a (B,) tensor.
    """
    return (v_rebuilt - v).abs().pow(eta).flatten(1).mean(1)
