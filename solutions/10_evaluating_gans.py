"""Solutions to the exercises of notebook 10 · Evaluating GANs. Try each exercise before reading its answer."""

import torch  # the notebook's setup cell imports it; repeated here so that this file reads on its own


# %% Exercise 1
def frechet_from_moments(mu_r, cov_r, mu_g, cov_g):
    """Fréchet distance (squared 2-Wasserstein) between N(mu_r, cov_r) and N(mu_g, cov_g).

    mu_r, mu_g: (D,) means; cov_r, cov_g: (D, D) symmetric positive semi-definite covariances (float64).
    Returns a Python float.
    """
    mean_term = (mu_r - mu_g).pow(2).sum()                             # |mu_r - mu_g|^2
    vals, vecs = torch.linalg.eigh(cov_r)                              # cov_r = V diag(vals) V^T
    root_r = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T      # cov_r^(1/2), symmetric
    middle = root_r @ cov_g @ root_r                                   # symmetric, same eigenvalues as cov_r cov_g
    root_trace = torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum()   # Tr (cov_r cov_g)^(1/2)
    return float(mean_term + torch.trace(cov_r) + torch.trace(cov_g) - 2 * root_trace)


# %% Exercise 2
def coverage(probs, share=0.05):
    """Number of classes that receive at least `share` of the samples.

    probs: (N, C) class probabilities (rows sum to 1); each sample counts for its most probable class.
    Returns a Python int between 0 and C.
    """
    predicted = probs.argmax(1)                                        # (N,) the class of each sample
    counts = torch.bincount(predicted, minlength=probs.shape[1])      # (C,) samples per class
    return int((counts >= share * len(probs)).sum())


# %% Exercise 3
def inception_score(probs):
    """Inception score of N samples from their class probabilities.

    probs: (N, C) class probabilities p(y|x_i), rows summing to 1. Returns a Python float in [1, C].
    """
    marginal = probs.mean(0, keepdim=True)                             # (1, C) p(y)
    kl = (torch.special.xlogy(probs, probs) - torch.special.xlogy(probs, marginal)).sum(1)   # (N,) KL(p(y|x_i) || p(y))
    return float(kl.mean().exp())
