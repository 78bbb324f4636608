"""Helpers shared by test modules: builders and fixtures data that the unit, integration
and system halves of one topic both use. Shared pytest fixtures live in tests/conftest.py."""
