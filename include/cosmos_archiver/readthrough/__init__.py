"""Read-through: the billing API's data access over Cosmos DB (hot) and the Parquet archive (cold).

``repository`` answers get/list/create/update/delete exactly as before archiving; ``index`` locates an archived
record without scanning (written per verified slice, compacted); ``rows`` reads only the row group holding it;
``erasure`` removes deleted records from the archive (right to erasure); ``markers`` defines the shape of the
stub and tombstone documents in Cosmos DB.
"""
