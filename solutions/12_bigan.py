"""Solutions to the exercises of notebook 12 · BiGAN. Try each exercise before reading its answer."""

import torch  # the notebook's setup cell imports it; here for readers and the linter


# %% Exercise 1
def joint_batch(real, z, E, G):
    """The encoder's and the generator's pairs in one batch, for one pass of the joint discriminator.

    real: (B, 1, H, W) real images; z: (B, d) codes from the prior; E: images -> codes; G: codes -> images.
    Returns (images, codes, targets): (2B, 1, H, W), (2B, d) and (2B, 1), the pairs (x, E(x)) with target 1
    first, then the pairs (G(z), z) with target 0.
    """
    m = real.size(0)
    images = torch.cat([real, G(z)])                                       # (2B, 1, H, W): x, then G(z)
    codes = torch.cat([E(real), z])                                        # (2B, d): E(x), then z
    targets = torch.cat([torch.ones(m, 1, device=real.device),            # (2B, 1): 1 for the encoder's pairs,
                         torch.zeros(m, 1, device=real.device)])          #          0 for the generator's
    return images, codes, targets


# %% Exercise 2
def joint_tables(p_x, p_z, encode, generate):
    """The encoder's and the generator's joint distributions over (image, code), for K images and K codes.

    p_x, p_z: (K,) probabilities; encode: (K,) long, encode[x] = the code of image x; generate: (K,) long,
    generate[z] = the image of code z. Returns (q_e, q_g), each (K, K), rows x and columns z:
    q_e[x, z] = p_x[x] where z == encode[x] (else 0); q_g[x, z] = p_z[z] where x == generate[z] (else 0).
    """
    k = len(p_x)
    q_e = torch.zeros(k, k, dtype=p_x.dtype)
    q_g = torch.zeros(k, k, dtype=p_z.dtype)
    q_e[torch.arange(k), encode] = p_x                                     # image x with its one code encode[x]
    q_g[generate, torch.arange(k)] = p_z                                   # code z with its one image generate[z]
    return q_e, q_g
