"""The pluggable checks, one module per family; each module is an entry point (see setup.cfg)."""
