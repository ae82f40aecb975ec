"""Following a growing dataset: which manifest every rank moves onto at an epoch boundary.

A loader with ``follow=True`` re-reads its sources (the manifest path or URI, or the dataset version
name through its resolver) when a new epoch begins. Ranks may read at slightly different moments,
so one may see a manifest published a moment later than another's. They agree without trusting
clocks: each rank counts, per source, the shards of the manifest it read that extend the stream it
is reading (0 when it does not extend it), and all ranks take the smallest count, gathered with
``torch.distributed`` when it is initialised. Since a publisher only ever appends shards, the
smallest count names a manifest every rank has read a superset of, and each rank reads that many
leading shards of its own copy. A single process needs no collective.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sharding.errors import ManifestError
from sharding.loader.eras import prefix_identity
from sharding.loader.manifest import RemoteOptions, ShardManifest, read_manifest

log = logging.getLogger(__name__)

Agree = Callable[[list[int]], list[int]]


def extends(new: ShardManifest, old: ShardManifest, n_old: int) -> bool:
    """Whether ``new`` lists the first ``n_old`` shards of ``old`` first, unchanged, under the same
    tokenizer and dtype (paths may differ: shards are compared by checksum and token count)."""
    return new.n_shards >= n_old and prefix_identity(new, n_old) == prefix_identity(old, n_old)


def usable_counts(
    latest: Sequence[ShardManifest | None], current: Sequence[ShardManifest], read: Sequence[int]
) -> list[int]:
    """Per source, the shards of ``latest`` this rank could move onto: all of them when the manifest
    extends the ``read`` leading shards of ``current``, else ``read`` (stay). A manifest that does
    not extend the stream (a rebuild, another tokenizer) is logged once per call and ignored."""
    out = []
    for new, old, n in zip(latest, current, read, strict=True):
        if new is None:
            out.append(n)
        elif extends(new, old, n):
            out.append(new.n_shards)
        else:
            log.warning("follow: %s does not extend the %d shards being read; staying on them", new.uri, n)
            out.append(n)
    return out


def agree_min(counts: list[int]) -> list[int]:
    """The element-wise minimum of ``counts`` over all ranks of the initialised torch.distributed
    process group (a collective every rank must call), or ``counts`` itself without one."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(counts)
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, list(counts))
    return [min(int(c[i]) for c in gathered) for i in range(len(counts))]


def read_latest(
    names: Sequence[str], resolve: Callable[[str], str], remote: RemoteOptions | None
) -> list[ShardManifest | None]:
    """Re-read every source: version names go through ``resolve`` again, so a version that now names
    a later manifest is seen. A source that cannot be read now (a manifest being replaced, a store
    down) is None, logged: the loader stays on what it reads and tries again at the next epoch."""
    out: list[ShardManifest | None] = []
    for n in names:
        try:
            out.append(read_manifest(resolve(n), remote))
        except (ManifestError, OSError, ValueError) as exc:
            log.warning("follow: cannot read %s now (%s); staying on the manifest being read", n, exc)
            out.append(None)
    return out


def check_follow_topology(world_size: int) -> None:
    """follow=True on several ranks needs the collective of :func:`agree_min`. Raises ValueError."""
    if world_size == 1:
        return
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            "follow=True with world_size > 1 needs torch.distributed initialised: the ranks agree on the "
            "manifest to move onto with one all_gather at each epoch boundary"
        )


def agreed_manifests(
    plan: Any, names: Sequence[str], resolve: Callable[[str], str], remote: RemoteOptions | None
) -> tuple[list[ShardManifest], list[int]] | None:
    """Re-read the sources of ``plan`` (a LoaderPlan) and agree with the other ranks on how many shards of
    each to read from the next epoch: the manifests to read them from and the counts, or None when no
    source grew. Every rank must call it at the same step (a collective under torch.distributed)."""
    latest = read_latest(names, resolve, remote)
    reading = [e[-1][1] for e in plan.eras]
    counts = agree_min(usable_counts(latest, plan.manifests, reading))
    if counts == reading:
        return None
    # a count above what this rank reads means every rank, this one included, read a manifest that grew
    grown = [new if c > n and new is not None else old
             for new, old, c, n in zip(latest, plan.manifests, counts, reading, strict=True)]
    return grown, counts
