"""What a TokenLoader's ``source`` argument names: manifests, version names, lists and weighted mixes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sharding.loader.eras import Era
from sharding.loader.manifest import ShardManifest, is_remote

Source = str | Path | Sequence[str | Path] | Mapping[str, float]


def resolve(name: str, resolver: Callable[[str], str] | None) -> str:
    """A source as given when it is a location (an s3:// or file: URI, or an existing path), else what
    ``resolver`` makes of it (a dataset version name). The loader never reads a config file itself."""
    if is_remote(name) or name.startswith("file:") or Path(name).exists():
        return name
    if resolver is None:
        raise ValueError(
            f"source {name!r} is neither an existing path nor an s3:// or file:// URI; to read it as a dataset "
            "version, pass a resolver, e.g. resolver=pipelines.ops.versions.manifest_resolver(\"params.yaml\")"
        )
    return str(resolver(name))


def sources(source: Source) -> tuple[list[str], list[float] | None]:
    if isinstance(source, str | Path):
        return [str(source)], None
    if isinstance(source, Mapping):
        if not source:
            raise ValueError("source is an empty mapping")
        return [str(k) for k in source], [float(v) for v in source.values()]
    names = [str(s) for s in source]
    if not names:
        raise ValueError("source is an empty list")
    return names, None


def token_weights(manifests: Sequence[ShardManifest], eras: Sequence[tuple[Era, ...]]) -> list[float]:
    """Default mixing weights: each source's stream tokens in its first era (the data the loader
    started on), so a growing mix keeps its proportions."""
    return [float(m.stream_tokens[: e[0][1]].sum()) for m, e in zip(manifests, eras, strict=True)]


def topology(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Rank and world size: as given, else from torch.distributed when initialised, else 0 and 1."""
    if rank is None or world_size is None:
        import torch.distributed as dist

        ready = dist.is_available() and dist.is_initialized()
        rank = rank if rank is not None else (dist.get_rank() if ready else 0)
        world_size = world_size if world_size is not None else (dist.get_world_size() if ready else 1)
    if world_size <= 0 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size
