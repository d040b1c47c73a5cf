"""A test app that overrides ``migrate``, as some third-party apps do (for safemigrate.E002)."""
