"""Builders and sample data used by more than one test module (mostly the unit and the
integration half of one topic). Shared pytest fixtures live in tests/conftest.py."""
