"""Network plumbing shared by every collector: name resolution, address rules, politeness (per-address
connection and rate budgets) and the bounded HTTP fetcher."""

import dns._features

# pledgescan asks its resolvers over UDP/TCP only, never over HTTPS: without this, dnspython's query
# modules import httpx (and httpcore, h2, anyio, trio, rich: about 0.25 s of CPU) to offer DNS over HTTPS,
# which a scan of TLS controls alone then pays for at start-up. Before any dns.query import: every
# module that queries DNS imports scanner.net first (the engine, the resolver, the collectors' context).
dns._features.force("doh", False)
