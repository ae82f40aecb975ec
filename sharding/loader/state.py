"""Checking a saved loader state: its eras against the manifests given, its position, and states
saved by the first state format (version 1: epoch and step at a fixed global batch)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sharding.loader.eras import Era, adopt, check_eras
from sharding.loader.stream import MixSchedule

if TYPE_CHECKING:
    from sharding.loader.batcher import LoaderPlan
    from sharding.loader.manifest import ShardManifest

Position = tuple[int, int, int, int, int]  # epoch, step, global step, windows served, epoch end


def eras_of_state(state: Mapping[str, Any], manifests: Sequence[ShardManifest]) -> tuple[tuple[Era, ...], ...]:
    """The per-source eras a state records, checked against ``manifests``. Raises ValueError when
    the counts differ or a saved era reads more shards than the given manifest holds (the state
    comes from a later manifest than this one)."""
    raw = state.get("eras")
    if not isinstance(raw, list) or len(raw) != len(manifests):
        raise ValueError(f"state eras {raw!r} do not list one entry per source ({len(manifests)})")
    out = []
    for i, (eras, m) in enumerate(zip(raw, manifests, strict=True)):
        try:
            out.append(check_eras(eras, m.n_shards))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"state eras of source {i} ({m.uri}) do not fit its {m.n_shards} shards: {exc}; a state "
                "loads on the manifest it was saved on or a later one that extends it"
            ) from None
    return tuple(out)


def check_position(state: Mapping[str, Any]) -> Position:
    """(epoch, step, global step, windows, epoch end) of a state. Raises ValueError naming the
    fields when they are not integers or the position lies outside its epoch (fewer than the
    saved global batch of windows left, or a negative counter)."""
    try:
        epoch, step, gstep, windows, end, batch = (
            int(state[k]) for k in ("epoch", "step", "global_step", "windows", "epoch_end", "global_batch")
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"state position is incomplete or not integers ({exc})") from None
    if min(epoch, step, gstep, windows) < 0 or batch <= 0 or windows + batch > end:
        raise ValueError(
            f"state position epoch={epoch}, step={step}, windows={windows}, epoch_end={end} "
            f"(global batch {batch}) is out of range"
        )
    return epoch, step, gstep, windows, end


def _v1_hash(plan: LoaderPlan, global_batch: int, steps_per_epoch: int) -> str:
    """The config hash the first state format recorded (whole manifests, global batch, epoch length)."""
    doc = {
        "sources": [m.identity() for m in plan.manifests],
        "weights": [round(x, 12) for x in plan.weights],
        "seq_len": plan.seq_len,
        "global_batch": global_batch,
        "seed": plan.seed,
        "block_shards": plan.block_shards,
        "mix_block_windows": plan.mix_block_windows,
        "steps_per_epoch": steps_per_epoch,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def v1_position(state: Mapping[str, Any], plan: LoaderPlan) -> dict[str, Any]:
    """A version-1 state (epoch and step at a fixed global batch, on exactly these manifests) as a
    version-2 one for ``plan``. Raises ValueError when it was saved on other data or config."""
    batch = int(state.get("global_batch", 0))
    if batch <= 0:
        raise ValueError(f"state global_batch={state.get('global_batch')!r} is not a positive integer")
    spe = plan.steps_per_epoch
    if not plan.fixed_steps:
        total = sum(int(m.stream_tokens.sum()) for m in plan.manifests)
        spe = max(1, total // (plan.seq_len * batch))
    mine = _v1_hash(plan, batch, spe)
    if state.get("config_hash") != mine:
        raise ValueError(f"state config_hash={state.get('config_hash')!r} does not match this loader's {mine!r}")
    epoch, step = int(state["epoch"]), int(state["step"])
    if epoch < 0 or not 0 <= step < spe:
        raise ValueError(f"state position epoch={epoch}, step={step} is out of range")
    full = plan.replace(eras=())
    return {
        **state,
        "global_step": epoch * spe + step,
        "windows": (epoch * spe + step) * batch,
        "epoch_end": (epoch + 1) * spe * batch,
        "eras": [[list(e) for e in eras] for eras in full.eras],
        "config_hash": full.config_hash(),
    }


def moved_plan(plan: LoaderPlan, windows: int, manifests: Sequence[ShardManifest], counts: Sequence[int]) -> LoaderPlan:
    """``plan`` with each source moved onto the first ``counts[i]`` shards of ``manifests[i]`` from its next
    stream epoch on, ``windows`` global windows having been served: the epoch being read is the one holding
    the next window's first token (already read as the last label of the window before it)."""
    schedule = MixSchedule(list(plan.weights), seed=plan.seed, block_windows=plan.mix_block_windows)
    consumed = schedule.consumed(windows)
    current = [se.locate(int(j) * plan.seq_len)[0] for se, j in zip(plan.stream_eras(), consumed, strict=True)]
    eras = tuple(adopt(e, current_epoch=c, n_shards=n) for e, c, n in zip(plan.eras, current, counts, strict=True))
    return plan.replace(manifests=tuple(manifests), eras=eras)


def position_after(marks: Sequence[Position], step: int, global_batch: int, kept: int) -> Position:
    """The position after global step ``step``, from ``marks`` (positions where runs of steps at
    ``global_batch`` began, oldest first). Raises ValueError when ``step`` precedes them all."""
    for epoch, first, gstep, windows, end in reversed(marks):
        if gstep <= step + 1:
            d = step + 1 - gstep
            return epoch, first + d, step + 1, windows + d * global_batch, end
    raise ValueError(f"after_step={step} lies before the last {kept} epochs or the last load_state_dict")
