"""Solutions to the exercises of notebook 13 · Scaling up. Try each exercise before reading its answer."""

import torch  # the notebook's setup cell imports it; here for readers and the linter


# %% Exercise 1
def averaged_gradient(model, loss_fn, x, world):
    # The mean over `world` interleaved shards of x of the gradients of loss_fn(model(shard)).
    #
    # model: an nn.Module; loss_fn: output -> scalar; x: (B, ...) with B divisible by world.
    # Returns: a list of tensors shaped like model.parameters(); every p.grad is None afterwards.
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for rank in range(world):
        shard = x[rank::world]                                            # what rank `rank` takes, as the sampler deals
        grads = torch.autograd.grad(loss_fn(model(shard)), params)        # its gradient, .grad untouched
        total = [t + g for t, g in zip(total, grads)]
    return [t / world for t in total]                                     # the all-reduce's average


# %% Exercise 2
def shard_indices(n, world, rank, seed, epoch):
    # The indices rank `rank` of `world` takes in epoch `epoch` (as DistributedSampler with drop_last=True).
    #
    # Returns: a list of ints, n // world of them.
    g = torch.Generator().manual_seed(seed + epoch)                       # the same order on every rank
    order = torch.randperm(n, generator=g).tolist()
    order = order[:n // world * world]                                    # drop the tail that does not split evenly
    return order[rank::world]                                             # every world-th, starting at rank
