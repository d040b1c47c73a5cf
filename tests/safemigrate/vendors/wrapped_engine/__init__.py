"""A third-party database engine: SQLite under a vendor name safemigrate does not know."""
