"""Writing a shard dataset: `config` (the shard stage's settings), `plan` (pure kernels: the seeded document
order, packing samples into shards by size, the run lookup a task uses), `dataset_plan` (a run's plan and the
per-batch computations of its tasks), `sinks` (atomic local/S3 object writes and the output folder's object
operations) and `writer` (streaming samples into one tar shard with its index and sha256). The format itself is
`sharding.format`; Spark glue is in the shard stage (pipelines)."""
