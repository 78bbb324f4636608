"""Development tooling, not the engine: the bundled demo publisher and an embedded S3
server (SeaweedFS) for the demo and the tests. Only `ingest demo` imports it, lazily."""
