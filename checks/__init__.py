"""The pluggable checks, one module per family. Each module exposes ``CHECKS`` (see setup.cfg)."""
