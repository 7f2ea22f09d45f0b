"""Farsight: non-site supervision platform. The kernel: settings, domain types, registry, errors."""

__version__ = "0.1.0"
