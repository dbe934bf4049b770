"""The portfolio's "what to fix first": the controls that fail most across members, heaviest first.

Built from the store's result summaries (status and severity per control, no findings loaded), so it
stays cheap for hundreds of members. The member pages carry each fix in full.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from scanner.history.store import ResultSummary
from scanner.models import Severity, Status

MAX_ROWS = 10


@dataclass
class CommonFailure:
    control: str
    title: str
    severity: Severity
    targets: int = 0
    members: set[str | None] = field(default_factory=set)
    member_pages: dict[str, str] = field(default_factory=dict)  # member name -> page, first few


def common_failures(summaries: Iterable[ResultSummary], titles: Mapping[str, str],
                    names: Mapping[str | None, tuple[str, str]], limit: int = MAX_ROWS
                    ) -> list[CommonFailure]:
    """Failing controls across the run: severity first, then how many members share the failure.

    ``names``: member id -> (display name, page file name)."""
    out: dict[str, CommonFailure] = {}
    for s in summaries:
        for cid, (status, sev) in s.controls.items():
            if status != Status.FAIL.value:
                continue
            cf = out.get(cid)
            if cf is None:
                cf = out[cid] = CommonFailure(cid, titles.get(cid, cid), Severity(sev))
            cf.targets += 1
            cf.members.add(s.member)
            name, page = names.get(s.member, (s.member or "(no member)", ""))
            if len(cf.member_pages) < 6 and page:
                cf.member_pages.setdefault(name, page)
    rows = sorted(out.values(), key=lambda c: (-c.severity.rank, -len(c.members), -c.targets, c.control))
    return rows[:limit]
