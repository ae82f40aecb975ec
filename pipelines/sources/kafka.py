"""Kafka sources: planning offset ranges on the driver, reading one range inside a task (kafka-python).

A range [start, end) of one partition is read by a consumer with no group (assign + seek), so nothing is
committed to Kafka: the offsets live in the raw_docs snapshot summary. `end` is the high watermark seen when
planning; a task stops there, at its byte share, or after `poll_timeout_ms` without records, and reports the
next offset it actually reached, so a broker whose watermark is off (Tansu's is the base offset of the last
batch + 1) never makes us skip records: they are read by a later run.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import pyarrow as pa

from pipelines.errors import StageInputError
from pipelines.secrets import resolve_settings
from pipelines.sources.config import KafkaSource
from pipelines.sources.records import Decoded, decode_json_values, decode_text_values, split_decoded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OffsetRange:
    """Offsets [start, end) of one topic partition."""

    topic: str
    partition: int
    start: int
    end: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_ranges(
    starts: dict[tuple[str, int], int],
    ends: dict[tuple[str, int], int],
    *,
    max_records: int | None,
    records_per_task: int,
) -> list[OffsetRange]:
    """Split what is available per partition (end - start) into ranges of at most `records_per_task`.

    `max_records` bounds the total; it is shared fairly (water-filling: small partitions take all they have,
    the rest is split evenly, remainder to the first partitions in (topic, partition) order). Partitions with
    nothing available get no range. Deterministic for given inputs.

    >>> plan_ranges({("t", 0): 0, ("t", 1): 5}, {("t", 0): 10, ("t", 1): 6}, max_records=4, records_per_task=2)
    [OffsetRange(topic='t', partition=0, start=0, end=2), OffsetRange(topic='t', partition=0, start=2, end=3), OffsetRange(topic='t', partition=1, start=5, end=6)]
    """
    if records_per_task <= 0:
        raise ValueError(f"records_per_task={records_per_task}")
    if max_records is not None and max_records <= 0:
        raise ValueError(f"max_records={max_records}")
    keys = sorted(k for k in ends if ends[k] > starts.get(k, 0))
    avail = {k: ends[k] - starts.get(k, 0) for k in keys}
    take = dict(avail)
    if max_records is not None and sum(avail.values()) > max_records:
        take, budget, left = {}, max_records, sorted(keys, key=lambda k: (avail[k], k))
        while left:
            share = budget // len(left)
            small = [k for k in left if avail[k] <= share]
            if not small:
                extra = budget - share * len(left)
                for i, k in enumerate(sorted(left)):
                    take[k] = share + (1 if i < extra else 0)
                break
            for k in small:
                take[k] = avail[k]
                budget -= avail[k]
            left = [k for k in left if k not in small]
    out = []
    for k in keys:
        start, stop = starts.get(k, 0), starts.get(k, 0) + take.get(k, 0)
        for s in range(start, stop, records_per_task):
            out.append(OffsetRange(k[0], k[1], s, min(stop, s + records_per_task)))
    return out


# Fetch sizes of a range reader: a few large fetches instead of many 1 MiB ones (kafka-python's default);
# a partition's fetch may hold up to this much, so a task holds at most about that in memory.
RANGE_FETCH = {"max_partition_fetch_bytes": 16 << 20, "fetch_max_bytes": 64 << 20}


def consumer(src: KafkaSource, defaults: dict[str, Any] | None = None, **extra: Any) -> Any:
    """A kafka-python consumer with no group and no auto commit; `src.client` settings pass through as given
    and take precedence over `defaults` (but not over `extra`)."""
    from kafka import KafkaConsumer

    client = resolve_settings(src.client, f"kafka source {src.label()}: client")
    settings: dict[str, Any] = {"bootstrap_servers": src.bootstrap.split(","), "enable_auto_commit": False,
                                "group_id": None, **(defaults or {}), **client, **extra}
    return KafkaConsumer(**settings)


def partition_offsets(src: KafkaSource) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    """(earliest, high watermark) offsets of every partition of the source's topics (list and/or pattern)."""
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    try:
        c = consumer(src)
    except KafkaError as exc:
        raise StageInputError(f"kafka source {src.label()}: cannot connect ({type(exc).__name__})") from None
    try:
        topics = set(src.topics)
        if src.topic_pattern:
            rx = re.compile(src.topic_pattern)
            topics |= {t for t in c.topics() if rx.fullmatch(t)}
        tps = []
        for topic in sorted(topics):
            parts = c.partitions_for_topic(topic)
            if parts is None:
                raise StageInputError(f"kafka source {src.label()}: topic {topic!r} does not exist")
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return {}, {}
        begin, end = c.beginning_offsets(tps), c.end_offsets(tps)
    finally:
        c.close()
    return ({(tp.topic, tp.partition): int(v) for tp, v in begin.items()},
            {(tp.topic, tp.partition): int(v) for tp, v in end.items()})


@dataclass
class RangeResult:
    """Where a range read stopped: `next_offset` is the first offset not taken; complete when it reached end."""

    next_offset: int
    complete: bool = False
    bytes_read: int = 0


def _text(b: bytes | None) -> Any:
    if b is None:
        return None
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(b).decode()}


def kafka_metadata(key: bytes | None, headers: list[tuple[str, bytes]], timestamp: int | None) -> dict[str, Any]:
    """The `_kafka` part of a document's metadata: key and header values as UTF-8 text, else {"base64": …}."""
    return {"key": _text(key), "headers": [[k, _text(v)] for k, v in headers or []], "timestamp": timestamp}


def _json(value: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, separators=(",", ":"))`, through orjson where it gives the same."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):  # e.g. a header name holding a lone surrogate
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def with_kafka_metadata(metadata: str | None, kafka_json: str) -> str:
    """A document's metadata JSON with `"_kafka": <kafka_json>` set, as parsing `metadata`, setting the key
    and printing it back compactly would give: appended as the last member, or in place when the record
    itself has a `_kafka` field."""
    if metadata is None:
        return '{"_kafka":' + kafka_json + "}"
    if '"_kafka"' in metadata:  # maybe a field of its own (or only text inside a value): take the long way
        meta = json.loads(metadata)
        meta["_kafka"] = json.loads(kafka_json)
        return json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
    return metadata[:-1] + ',"_kafka":' + kafka_json + "}"


def _batch(records: list[Any], src: KafkaSource, max_record_bytes: int, raw_limit: int
           ) -> tuple[pa.Table, pa.Table]:
    """One (raw_docs, quarantine) batch of records polled from one topic partition. Should anything raise
    on the batch, its records are done one by one and a record that raises alone is one `decode_error` row."""
    try:
        return _decode_batch(records, src, max_record_bytes, raw_limit)
    except Exception:
        log.warning("kafka %s[%d]: a batch at offset %d failed to decode; decoding its records one by one",
                    records[0].topic, records[0].partition, records[0].offset, exc_info=True)
    docs, bad = [], []
    for r in records:
        try:
            d, b = _decode_batch([r], src, max_record_bytes, raw_limit)
        except Exception as exc:
            dec = Decoded()
            dec.add_error("decode_error", f"{type(exc).__name__}: {exc}")
            d, b = split_decoded(dec.to_arrow(), source_type="kafka", source_uri=r.topic,
                                 source_partition=[r.partition], source_offset=[r.offset],
                                 id_prefix=f"{r.topic}/{r.partition}/", raw=[r.value],
                                 raw_size=[len(r.value) if r.value is not None else 0], raw_limit=raw_limit)
        docs.append(d)
        bad.append(b)
    return pa.concat_tables(docs), pa.concat_tables(bad)


def _decode_batch(records: list[Any], src: KafkaSource, max_record_bytes: int, raw_limit: int
                  ) -> tuple[pa.Table, pa.Table]:
    values = [r.value for r in records]
    sizes = [len(v) if v is not None else 0 for v in values]
    if src.value_format == "text":
        dec = decode_text_values(values, sizes, max_record_bytes=max_record_bytes)
    else:
        dec = decode_json_values(values, sizes, id_field=src.id_field, text_field=src.text_field,
                                 max_record_bytes=max_record_bytes)
    for i, (r, code) in enumerate(zip(records, dec.error_code, strict=True)):
        if code is None:
            if r.key is None and not r.headers:  # the usual record: no need for a dict
                kafka_json = '{"key":null,"headers":[],"timestamp":' + _json(r.timestamp) + "}"
            else:
                kafka_json = _json(kafka_metadata(r.key, r.headers, r.timestamp))
            dec.metadata[i] = with_kafka_metadata(dec.metadata[i], kafka_json)
    first = records[0]
    return split_decoded(
        dec.to_arrow(), source_type="kafka", source_uri=first.topic, source_partition=[first.partition] * len(records),
        source_offset=[r.offset for r in records], id_prefix=f"{first.topic}/{first.partition}/", raw=values,
        raw_size=sizes, raw_limit=raw_limit,
    )


def read_range(
    src: KafkaSource, rng: OffsetRange, result: RangeResult, *, max_bytes: int | None, max_record_bytes: int,
    raw_limit: int, batch_rows: int = 8192,
) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Read offsets [rng.start, rng.end) as (raw_docs, quarantine) batches, updating `result` as it goes.

    Stops early at `max_bytes` of values (after at least one record) or when the broker stays silent for
    `src.poll_timeout_ms`; `result.next_offset` is then the first offset not read.
    """
    from kafka import TopicPartition

    tp = TopicPartition(rng.topic, rng.partition)
    c = consumer(src, RANGE_FETCH, max_poll_records=batch_rows)
    try:
        c.assign([tp])
        c.seek(tp, rng.start)
        idle_since = time.monotonic()
        while result.next_offset < rng.end:
            polled = c.poll(timeout_ms=min(1000, src.poll_timeout_ms), max_records=batch_rows).get(tp, [])
            if not polled:
                if time.monotonic() - idle_since > src.poll_timeout_ms / 1000:
                    log.warning("kafka %s[%d]: no records for %d ms at offset %d (planned end %d); stopping",
                                rng.topic, rng.partition, src.poll_timeout_ms, result.next_offset, rng.end)
                    break
                continue
            idle_since = time.monotonic()
            take, reached_end, over = [], False, False
            for r in polled:
                if r.offset >= rng.end:
                    reached_end = True
                    break
                size = len(r.value) if r.value is not None else 0
                if max_bytes is not None and result.bytes_read and result.bytes_read + size > max_bytes:
                    over = True
                    break
                result.bytes_read += size
                take.append(r)
            if take:
                yield _batch(take, src, max_record_bytes, raw_limit)
                result.next_offset = take[-1].offset + 1
            if reached_end:
                result.next_offset = rng.end  # offsets between the last record and end are gaps
                break
            if over:
                break
            result.next_offset = max(result.next_offset, min(c.position(tp), rng.end))
    finally:
        c.close()
    result.complete = result.next_offset >= rng.end
