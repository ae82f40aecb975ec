"""How a TokenLoader makes its batches: settings that never change what a batch holds."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LoaderOptions(BaseModel):
    """Tuning of a TokenLoader, grouped in one validated object (``TokenLoader(..., options=LoaderOptions(...))``).

    None of these changes the token stream or a batch's content: that is fixed by the sources, ``seq_len``,
    ``batch_size`` times the world size, ``seed``, ``steps_per_epoch``, ``block_shards``, ``fields``,
    ``mask_cross_document`` and ``on_corrupt``, so a state saved under some options resumes under others.

    ``num_workers``: DataLoader worker processes making every N-th step (0: threads in this process).
    ``producers``: threads packing alternate chunks of steps when ``num_workers`` is 0 (remote sources use
    one). ``prefetch``: batches made ahead of the consumer (also the CUDA copy ring's depth). ``verify``:
    check each shard's sha256, index and tar layout before its first use (off only for trusted local data).
    The shard cache of s3:// sources (folder, size bound, shards fetched ahead) is `RemoteOptions`, passed
    as ``remote=``. Raises pydantic's ValidationError (a ValueError) naming a bad value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_workers: int = Field(default=0, ge=0, description="DataLoader worker processes (0: none)")
    producers: int = Field(default=2, ge=1, description="packing threads when num_workers is 0")
    prefetch: int = Field(default=4, ge=1, description="batches made ahead of the consumer")
    verify: bool = Field(default=True, description="check every shard before its first use")


def with_num_workers(options: LoaderOptions | None, num_workers: int | None) -> LoaderOptions:
    """``options`` (default LoaderOptions()) with TokenLoader's ``num_workers=`` keyword applied: the documented
    shorthand for ``options=LoaderOptions(num_workers=...)``. Raises ValueError when both are given and differ."""
    options = options or LoaderOptions()
    if num_workers is None or num_workers == options.num_workers:
        return options
    if "num_workers" in options.model_fields_set:
        raise ValueError(f"num_workers={num_workers} contradicts options.num_workers={options.num_workers}")
    return LoaderOptions(**{**options.model_dump(), "num_workers": num_workers})
