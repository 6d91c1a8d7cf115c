"""The pipeline: a connector's batches in, normalized (in worker processes when it pays), threaded,
stored and routed, a batch per transaction (ingest.py), and wired once for every caller.

Empty on purpose: a worker process imports inbox.pipeline.workers, and with it this package,
and must not pull the store in as it starts.
"""
