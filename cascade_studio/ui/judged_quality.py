"""The Trade-offs page's "judged" quality basis (issue 30): quality is what `whatif --judge NAME`
makes it, with the same function (services.judged_evaluation.judge_outcomes) on the loaded outcomes.
Before a judge is paid the page shows `whatif --judge NAME --dry-run`'s estimate and asks (Cancel is
the default and the Esc answer); when every verdict is stored already nothing is sent and nothing asked."""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtCore import QObject

from cascade_studio.services.judged_evaluation import judge_outcomes
from cascade_studio.services.secrets import SecretStore
from cascade_studio.ui import confirm
from cascade_studio.ui.run_thread import ServiceThread

JUDGE = "judge"


def judged_quality_sentence(report: dict[str, Any] | None) -> str:
    """The CLI's words (cli/whatif.py) for what the judge did to Quality."""
    if report is None:
        return ""
    if not report.get("applied"):
        return f" Judge not applied: {report['note']}."
    return (f" Judged by {report['basis']}: " + ", ".join(
        f"tier {k} {v['judged']} judged, {v['matched']} matched" for k, v in report["tiers"].items())
        + f"; judging cost ${report['cost_usd']} ({report['requests']} requests, {report['reused']} reused).")


def cost_question(judge_name: str, estimate: dict[str, Any]) -> str:
    unknown = (f" {estimate['cost_unknown_requests']} of them of unknown cost (the judge's model has no price): "
               "the true cost is higher." if estimate["cost_unknown_requests"] else "")
    return (f"Quality judged by {judge_name} would cost about ${estimate['cost_usd']}: {estimate['requests']} "
            f"requests to send, {estimate['reused']} verdicts reused (stored verdicts are never paid twice)."
            f"{unknown}\n\nJudge the students' text answers?")


class QualityJudging(QObject):
    """Estimate, ask, judge, then show: one judged load of the page's outcomes. The page holds it as
    `judging` while it works; a refresh drops it and its results are ignored."""

    def __init__(self, page: Any, judge: Any, outcomes: Any, tiers: list, secrets: SecretStore | None) -> None:
        super().__init__(page)
        self.page, self.judge, self.outcomes, self.tiers = page, judge, outcomes, tiers
        self.secrets = secrets or SecretStore()
        self.worker: ServiceThread | None = None

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def start(self) -> None:
        outcomes = copy.deepcopy(self.outcomes)  # a dry run may fill stored verdicts in: on a copy
        self.page.say(f"Estimating what judging with {self.judge.name} would cost (nothing is sent)…")
        self._run("judge-estimate", lambda ws: judge_outcomes(ws, self.judge, self.tiers, outcomes, self.secrets,
                                                              dry_run=True), self._estimated)

    def _run(self, name: str, work, done) -> None:
        self.worker = ServiceThread(self.page.ws.path, name, work, parent=self)
        self.worker.finished.connect(done)
        self.worker.start()

    def _finish(self) -> bool:
        if self.page.judging is not self or self.worker is None:
            return False  # superseded by a refresh
        self.worker.wait(5)
        self.worker = None
        return True

    def _estimated(self, estimate, error) -> None:
        if not self._finish():
            return
        if error:
            self.page.judging = None
            self.page.say(f"Cannot estimate the judge's cost: {error}", error=True)
            return
        if estimate.get("applied") is False and "requests" not in estimate:
            self._show(estimate)  # nothing for a judge to replace (quality is accuracy)
            return
        if estimate["requests"] and confirm.ask_choice(self.page, "Judge quality", cost_question(
                self.judge.name, estimate), [(JUDGE, "Judge")]) != JUDGE:
            self.page.cancel_judged_quality(self.outcomes, self.tiers)
            return
        self.page.say(f"Judging the students' text answers with {self.judge.name}…")
        self._run("judged-quality", lambda ws: judge_outcomes(ws, self.judge, self.tiers, self.outcomes,
                                                              self.secrets), self._judged)

    def _judged(self, report, error) -> None:
        if not self._finish():
            return
        if error:
            self.page.judging = None
            self.page.say(f"Judging failed: {error}", error=True)
            return
        self._show(report)

    def _show(self, report: dict[str, Any]) -> None:
        self.page.judging = None
        self.page.quality_judge = report
        self.page._show(self.outcomes, self.tiers)
