"""The local testbed: real servers on 127.0.0.0/8, started by pytest fixtures (and ``make testbed``)."""
