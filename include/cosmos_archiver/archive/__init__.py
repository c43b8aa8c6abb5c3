"""The archive format: canonical JSON and its sha256, the Parquet layout, the per-slice manifest, where files live
in Blob Storage, and the per-slice lease that keeps one writer at a time."""
