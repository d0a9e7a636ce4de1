"""Livermore's shared library: keys, messages, settings, Redis/Postgres plumbing, exchanges."""

__version__ = "0.1.0"
