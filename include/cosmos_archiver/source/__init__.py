"""Reading the source: Cosmos DB clients and paged, RU-paid reads of one time slice."""
