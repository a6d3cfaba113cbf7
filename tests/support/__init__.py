"""Helpers the tests share (importable as `tests.support`; pytest puts the repository root on sys.path)."""
