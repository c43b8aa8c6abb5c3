"""cosmos-archive: move cold Cosmos DB records to Blob Storage as verified Parquet."""

__version__ = "0.1.0"
