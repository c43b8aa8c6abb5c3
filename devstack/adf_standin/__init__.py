"""A loopback stand-in for Azure Data Factory: its REST endpoints and the copy a pipeline run performs."""
