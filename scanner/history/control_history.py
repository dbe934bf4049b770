"""A control's history on one target across stored runs: failing since when and for how many scans,
first seen failing, fixed on which date. Runs in which the target was not reached, or the control could
not be assessed (error, not applicable), neither break nor lengthen a streak; only runs with the same
check selection count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from scanner import i18n
from scanner.history.store import Observation, RunInfo, Store

DECIDED = ("pass", "warn", "fail")


@dataclass(frozen=True)
class ControlHistory:
    target_key: str
    control: str
    status: str  # in the run shown
    since: datetime | None  # failing now: the first scan of the current failing streak
    scans: int  # failing now: scans in that streak
    first_failed: datetime | None  # the first scan it ever failed
    fixed_on: datetime | None  # passing now after failing before: the first scan it passed again

    @property
    def target(self) -> str:
        return self.target_key.partition(":")[2]

    def describe(self, lang: str | None = None) -> str:
        """'failing since 2026-09-01, 12 scans' / 'fixed on 2026-10-06 (first seen failing 2026-08-04)',
        in ``lang`` (default: the language reports are rendered in now)."""
        code = lang or i18n.current()
        _, ngettext = i18n.gettext_for(code), i18n.ngettext_for(code)
        first = _("first seen failing %(date)s") % {"date": f"{self.first_failed:%Y-%m-%d}"} \
            if self.first_failed else ""
        if self.status == "fail" and self.since is not None:
            text = ngettext("failing since %(date)s, %(num)d scan", "failing since %(date)s, %(num)d scans",
                            self.scans) % {"date": f"{self.since:%Y-%m-%d}", "num": self.scans}
            return text + (f" ({first})" if self.first_failed and self.first_failed < self.since else "")
        if self.fixed_on is not None:
            fixed = _("fixed on %(date)s") % {"date": f"{self.fixed_on:%Y-%m-%d}"}
            return fixed + (f" ({first})" if first else "")
        return self.status


def histories(observations: list[Observation], run_id: int) -> list[ControlHistory]:
    """Histories of the controls of every target assessed in ``run_id`` (observations oldest first)."""
    by_target: dict[str, list[Observation]] = {}
    for o in observations:
        if o.run_id <= run_id and o.reached:
            by_target.setdefault(o.target_key, []).append(o)
    out = []
    for key, obs in by_target.items():
        if obs[-1].run_id != run_id:
            continue  # not assessed in this run
        for control, (status_now, _sev) in obs[-1].controls.items():
            if status_now not in DECIDED:
                continue
            seen = [(o.started_at, o.controls[control][0]) for o in obs
                    if o.controls.get(control, ("", ""))[0] in DECIDED]
            fails = [i for i, (_w, st) in enumerate(seen) if st == "fail"]
            if not fails:
                continue
            first_failed = seen[fails[0]][0]
            if status_now == "fail":
                start = len(seen) - 1
                while start > 0 and seen[start - 1][1] == "fail":
                    start -= 1
                out.append(ControlHistory(key, control, status_now, seen[start][0], len(seen) - start,
                                          first_failed, None))
            else:
                out.append(ControlHistory(key, control, status_now, None, 0, first_failed,
                                          seen[fails[-1] + 1][0]))
    out.sort(key=lambda h: (h.status != "fail", h.target_key, h.control))
    return out


def member_histories(store: Store, run: RunInfo, member: str | None) -> list[ControlHistory]:
    """The control histories of one member's targets as of ``run``."""
    obs = store.observations(upto=run.id, selection=run.selection, member=member, with_controls=True)
    return histories([o for o in obs if o.member == member], run.id)
