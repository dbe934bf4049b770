"""The ``pledgescan`` command line: ``main`` (the group and ``scan``), one module per command family
(history, reanalyse, notify, worker) and the plumbing they share (``support``, ``lang``)."""
