"""tls checks (placeholder until the family lands)."""

from __future__ import annotations

from scanner.plugins import Check

CHECKS: list[Check] = []
