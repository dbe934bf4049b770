"""Network plumbing shared by every collector: name resolution, address rules, politeness (per-address
connection and rate budgets) and the bounded HTTP fetcher."""
