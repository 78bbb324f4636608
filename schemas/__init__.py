"""The data contract: versioned schema files (JSON), read by ingest.schema."""
