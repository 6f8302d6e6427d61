"""Apache Beam pipelines for data preparation and batch normalization (the optional ``beam`` extra).

``pip install -e ".[beam]" -c constraints-beam.txt``. The same pipelines run on the local
DirectRunner and on Dataflow, Flink or Spark. They only wire the library: every per-photo, per-shard
and per-batch step is the function the local binaries call (``normface.data.align.run_shard``,
``normface.data.average.average_person``, ``normface.data.screen.encode_chunk`` and
``finish_screening``, ``normface.data.build.write_shard``, ``normface.serving.batch_files.run_batch``),
so each step has one home. Per-photo failures are a tagged output written as a report and counted as Beam metrics
(one counter per failure kind); they never fail the pipeline.

Modules: :mod:`.common` (options, the shared fan-out, failure reports, metrics), :mod:`.align`
(stage 1), :mod:`.average` (stage 2), :mod:`.screen` (stage 2b, screening and deduplication: the
descriptors on the workers, the all-pairs comparison in one last step), :mod:`.records` (stage 3),
:mod:`.normalize` (batch normalization).
"""
