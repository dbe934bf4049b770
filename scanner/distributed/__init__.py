"""Scanning beyond one machine: Dramatiq workers on Redis, the history store as the record.

No broker named means none of this runs: the scan stays in-process with SQLite, as always. With
``--broker redis://...`` (or ``PLEDGESCAN_BROKER``) ``pledgescan scan`` records the run in the store
and enqueues one message per target and evidence family (TLS on its own queue); ``pledgescan worker``
processes run them. Modules:

- ``broker``: the Redis broker, queue names, reachability check.
- ``redis_budget``: the per-address politeness (``AddressBudget``) kept in Redis, shared by all workers.
- ``records``: idempotent writes of evidence and results keyed by (run, target, family), attempts,
  progress, the run's completion.
- ``work``: what one message does (collect one family; assess the target once its evidence is complete).
- ``actors``: the Dramatiq actors (imported by the worker processes).
- ``dispatch``: the scan side: enqueue a run's work, wait with progress.
"""
