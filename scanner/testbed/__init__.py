"""Test servers and certificates shipped with the package, for the test suite and ``pledgescan demo``.

Pure Python (``ssl``, ``cryptography``): no nginx, no root when high ports are used.
"""
