"""Dev kit: the local stack (cosmosdb-server behind the RU gateway, Azurite), the ADF stand-in, seeding,
business load, failure drills and the RU lab. For local runs, tests and benchmarks only: the product library
(include/cosmos_archiver) never imports it."""
