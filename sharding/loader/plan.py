"""The global window plan of a loader: what fixes the sequence of windows whatever the topology."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from sharding.loader.eras import Era, StreamEras, check_eras, prefix_identity
from sharding.loader.manifest import ShardManifest, check_compatible
from sharding.loader.shuffle import normalize_weights


@dataclass(frozen=True)
class LoaderPlan:
    """Everything that fixes the global sequence of batches, whatever the topology.

    ``global_batch`` windows per step; ``steps_per_epoch`` steps per epoch (default: the sources'
    total stream tokens divided by ``seq_len * global_batch``, at least 1; see :meth:`epoch_windows`).
    The stream is continuous, so the windows an epoch leaves over start the next one: nothing is
    dropped. ``eras`` holds, per source, which leading shards of its manifest each stream epoch reads
    (sharding.loader.eras; all of them by default).
    """

    manifests: tuple[ShardManifest, ...]
    weights: tuple[float, ...]
    seq_len: int
    global_batch: int
    seed: int
    block_shards: int
    mix_block_windows: int
    steps_per_epoch: int
    fixed_steps: bool = False  # steps_per_epoch was given, rather than derived from the tokens
    eras: tuple[tuple[Era, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.eras:
            object.__setattr__(self, "eras", tuple(((0, m.n_shards),) for m in self.manifests))
        if len(self.eras) != len(self.manifests):
            raise ValueError(f"{len(self.manifests)} sources but {len(self.eras)} era lists")
        object.__setattr__(
            self, "eras", tuple(check_eras(e, m.n_shards) for e, m in zip(self.eras, self.manifests, strict=True))
        )

    @classmethod
    def build(
        cls,
        manifests: list[ShardManifest],
        weights: list[float],
        *,
        seq_len: int,
        global_batch: int,
        seed: int,
        block_shards: int = 4,
        mix_block_windows: int = 1024,
        steps_per_epoch: int | None = None,
        eras: tuple[tuple[Era, ...], ...] = (),
    ) -> LoaderPlan:
        """Validate and build a plan (``eras``: all shards of every source from epoch 0 when empty).
        Raises ValueError naming a bad value, ManifestError for sources that cannot be mixed."""
        for name, value in (
            ("seq_len", seq_len),
            ("global_batch", global_batch),
            ("block_shards", block_shards),
            ("mix_block_windows", mix_block_windows),
        ):
            if int(value) <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if len(manifests) != len(weights):
            raise ValueError(f"{len(manifests)} sources but {len(weights)} weights")
        check_compatible(manifests)
        w = normalize_weights(weights)
        fixed = steps_per_epoch is not None
        eras = eras or tuple(((0, m.n_shards),) for m in manifests)
        if steps_per_epoch is None:
            total = sum(int(m.stream_tokens[: e[0][1]].sum()) for m, e in zip(manifests, eras, strict=True))
            steps_per_epoch = max(1, total // (seq_len * global_batch))
        elif steps_per_epoch <= 0:
            raise ValueError(f"steps_per_epoch must be > 0, got {steps_per_epoch}")
        return cls(
            tuple(manifests),
            tuple(float(x) for x in w),
            seq_len,
            global_batch,
            seed,
            block_shards,
            mix_block_windows,
            int(steps_per_epoch),
            fixed,
            eras,
        )

    @property
    def eod_id(self) -> int:
        return self.manifests[0].eod_id

    def replace(self, **changes: object) -> LoaderPlan:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def stream_eras(self) -> list[StreamEras]:
        return [StreamEras(m.stream_tokens, e) for m, e in zip(self.manifests, self.eras, strict=True)]

    def epoch_windows(self, epoch: int, global_batch: int | None = None) -> int:
        """Windows loader epoch ``epoch`` may serve at ``global_batch`` (default: the plan's):
        ``steps_per_epoch * global_batch`` when the steps were given, else the tokens the sources'
        stream epochs ``epoch`` hold divided by ``seq_len``, and at least one global batch. An epoch
        ends at its last whole batch; the windows left over start the next."""
        g = self.global_batch if global_batch is None else global_batch
        if self.fixed_steps:
            return self.steps_per_epoch * g
        tokens = sum(se.epoch_tokens(epoch) for se in self.stream_eras())
        return max(g, tokens // self.seq_len)

    def config_hash(self) -> str:
        """sha256 of what a resumed loader must share with the saved one: the data each stream epoch
        reads so far (the eras, by the checksums of their shards), weights, seq_len, seed and block
        sizes. Global batch, topology and epoch length are not in it: the position is a place in
        the token stream, which none of them changes."""
        doc = {
            "sources": [
                [[e, n, prefix_identity(m, n)] for e, n in eras]
                for m, eras in zip(self.manifests, self.eras, strict=True)
            ],
            "weights": [round(x, 12) for x in self.weights],
            "seq_len": self.seq_len,
            "seed": self.seed,
            "block_shards": self.block_shards,
            "mix_block_windows": self.mix_block_windows,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
