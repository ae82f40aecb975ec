"""The streaming loader: `TokenLoader` and what a caller passes to it.

Inside the package, by concern: `options` (`LoaderOptions`: workers, producers, prefetch, verification), `fields` (the table of
outputs), `sources` (what ``source`` names), `manifest` (reaching and reading a
source's manifest, `RemoteOptions`), `plan` (the global window plan) and `eras` / `state` / `follow`
(growing datasets, saved states), `shuffle` and `stream` (order, mixing, one source's token stream),
`store`, `cache` and `verify` (shard bytes, local or fetched, checked before first use), `batcher`,
`pack`, `gather`, `kernels` and `buffers` (packing windows into batches), `torch_glue` (DataLoader,
prefetch thread, device copies; the only module that imports torch, when a loader is iterated)."""

from sharding.errors import CorruptShardError, ManifestError
from sharding.loader.fields import FIELDS
from sharding.loader.manifest import RemoteOptions
from sharding.loader.options import LoaderOptions
from sharding.loader.token_loader import TokenLoader

__all__ = ["FIELDS", "CorruptShardError", "LoaderOptions", "ManifestError", "RemoteOptions", "TokenLoader"]
