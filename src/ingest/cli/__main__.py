from ingest.cli.main import entry

entry()
