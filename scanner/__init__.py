"""pledgescan: measure the Pledge 4 baseline from the outside."""

__version__ = "0.1.0"
