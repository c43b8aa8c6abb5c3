"""The reference billing API (FastAPI) on the read-through repository, and the archive lookup service."""
