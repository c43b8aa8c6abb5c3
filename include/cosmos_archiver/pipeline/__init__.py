"""The pipeline steps a slice goes through (copy, validate), and the run status that halts the rest on failure."""
