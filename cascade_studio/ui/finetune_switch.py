"""Fine-tuning page, part 4: a succeeded job's model into a tier (the jobs panel's "Use as tier"):
evaluated first if the user wishes, the teacher's tier only after a typed confirmation, and every
question answered Cancel by Enter and Esc. A switch can be undone (Edit > Undo Tier Change)."""

from __future__ import annotations

from typing import Any


def tier_set(tiers) -> list[dict[str, Any]]:
    """A tier set as data (what a comparison was made with)."""
    return [t.to_json() for t in tiers]


class TierSwitching:
    """The jobs panel's part that puts a job's model in a tier. It uses the panel's page, use_tier,
    use_button, comparison label, selected_job_id and show_job."""

    candidate_worker = None  # the evaluation before a switch, under way
    _comparison_job: str | None = None
    _comparison_tiers: list | None = None  # the tier set the comparison was made with

    def forget_comparison(self) -> None:
        self.comparison.hide()
        self.comparison.clear()
        self._comparison_job = None
        self._comparison_tiers = None

    def use_as_tier(self) -> None:
        """Offer to evaluate the job's model beside the tier's current one first (the validation tasks
        of the newest dataset), show both, and switch when the user confirms. The teacher's tier (or a
        new tier above it) only after a typed confirmation; Cancel, Esc and Enter change nothing."""
        from cascade_studio.core.errors import UserError
        from cascade_studio.services.datasets import validation_task_ids
        from cascade_studio.services.finetune.tracker import teacher_taken
        from cascade_studio.services.promotion import candidate_and_teacher
        from cascade_studio.ui import confirm

        page = self.page
        job_id, tier_no = self.selected_job_id(), self.use_tier.currentData()
        if page.ws is None or job_id is None or tier_no is None or self.candidate_worker is not None:
            return
        teacher = teacher_taken(page.ws, tier_no)
        if teacher is not None:
            self._replace_teacher(job_id, tier_no, teacher)
            return
        try:
            candidate, teacher, current = candidate_and_teacher(page.ws, job_id, tier_no)
        except (UserError, ValueError) as exc:
            if page.tiers():  # the job has not succeeded; the tier set would be invalid
                page.say(str(exc), error=True)
                return
            # no tiers yet: the model would be the only one, with no teacher to compare it with
            answer = confirm.ask_choice(
                self, f"Put the model in tier {tier_no}?",
                "The workspace has no tiers yet: the fine-tuned model would be the only one (its own teacher), "
                "with nothing to compare it with. Add the teacher's tier above it on the Tiers page.",
                [("switch", f"Put it in tier {tier_no}")])
            if answer == "switch":
                self.switch(job_id, tier_no)
            else:
                page.say(f"Tier {tier_no} is unchanged.")
            return
        split = validation_task_ids(page.ws)
        if not split or not split[1]:
            answer = confirm.ask_choice(
                self, f"Put the model in tier {tier_no}?",
                f"Put {candidate.model} in tier {tier_no}" + (f" in place of {current.model}" if current else "") +
                "? No dataset has a validation split to evaluate it on first (build one with a validation share "
                "above 0). Edit > Undo Tier Change puts the tier back.", [("switch", "Switch")])
            if answer == "switch":
                self.switch(job_id, tier_no)
            else:
                page.say(f"Tier {tier_no} is unchanged.")
            return
        beside = f", beside tier {tier_no}'s current model ({current.model})" if current else ""
        answer = confirm.ask_choice(
            self, "Evaluate before switching?",
            f"Evaluate {candidate.model} against the teacher (tier {teacher.tier}, {teacher.model}) on the "
            f"{len(split[1])} validation tasks of dataset {split[0]}{beside} before it takes tier {tier_no}? "
            f"Answers not collected yet are requested (up to {len(split[1]) * (3 if current else 2)} requests).\n\n"
            "Cancel (Esc) changes nothing.",
            [("evaluate", "Evaluate first"), ("switch", "Switch without evaluating")])
        if answer == "evaluate":
            self._evaluate_candidate(job_id, tier_no, split[0])
        elif answer == "switch":
            self.switch(job_id, tier_no)
        else:
            page.say(f"Tier {tier_no} is unchanged.")

    def _replace_teacher(self, job_id: str, tier_no: int, teacher) -> None:
        """The student's model into the teacher's place: only when the teacher's model name is typed."""
        from cascade_studio.ui import confirm

        where = (f"replace the teacher of tier {tier_no} ({teacher.model})" if tier_no == teacher.tier else
                 f"become the teacher above tier {teacher.tier} ({teacher.model}, which would answer to it)")
        text = (f"Tier {tier_no} is the teacher's place. The fine-tuned student model would {where}: every "
                "escalation, evaluation and dataset would then measure against the student itself. This is "
                "almost never meant; put it in a lower tier instead.")
        if confirm.confirm_typed(self, "Replace the teacher?", text, teacher.model, "Replace the teacher"):
            self.switch(job_id, tier_no, replace_teacher=True)
        else:
            self.page.say(f"Tier {tier_no} (the teacher) is unchanged: choose a lower tier for the fine-tuned model.")

    def _evaluate_candidate(self, job_id: str, tier_no: int, dataset_id: int) -> None:
        from cascade_studio.services.promotion import evaluate_candidate
        from cascade_studio.ui.run_thread import ServiceThread

        secrets = self.page.secrets

        async def work(ws):
            return await evaluate_candidate(ws, job_id, tier_no, secrets, dataset_id=dataset_id)

        self.use_button.setEnabled(False)
        self.page.say(f"Evaluating {job_id}'s model against the teacher on dataset {dataset_id}'s validation tasks "
                      "(collecting missing answers)…")
        worker = self.candidate_worker = ServiceThread(self.page.ws.path, "candidate-evaluation", work, parent=self)
        worker.switch_to = (job_id, tier_no)
        worker.finished.connect(self._candidate_evaluated)  # a method of this widget: delivered on the GUI thread
        worker.start()

    def _candidate_evaluated(self, comparison, error) -> None:
        from cascade_studio.ui.errors import ask_yes_no

        worker = self.sender()
        if worker is None or worker is not self.candidate_worker:
            return  # cancelled: the workspace changed or the page closed
        job_id, tier_no = worker.switch_to
        self.candidate_worker.wait(5)
        self.candidate_worker = None
        self.show_job()
        window = self.window()
        if hasattr(window, "evaluation_page"):  # the two evaluations are in its history now
            window.evaluation_page.refresh_drift()
        if error:
            self.page.say(f"The evaluation before the switch failed: {error.rstrip('.')}. Tier {tier_no} is "
                          "unchanged; press Use as tier again to retry or to switch without evaluating.", error=True)
            return
        self.comparison.setText(comparison.sentence())
        self._comparison_job = job_id
        self._comparison_tiers = tier_set(self.page.tiers())
        self.comparison.show()
        if ask_yes_no(self, f"Put the model in tier {tier_no}?",
                      f"{comparison.sentence()}\n\nPut {comparison.candidate.student.model} in tier {tier_no} now? "
                      "(Edit > Undo Tier Change puts the tier back.)"):
            self.switch(job_id, tier_no)
        else:
            self.page.say(f"Tier {tier_no} is unchanged. {comparison.sentence()}")

    def cancel_evaluation(self) -> None:
        if self.candidate_worker is not None:
            self.candidate_worker.cancel()
            self.candidate_worker.wait(5)
            self.candidate_worker = None
            self.forget_comparison()

    def switch(self, job_id: str, tier_no: int, *, replace_teacher: bool = False) -> None:
        from cascade_studio.core.errors import UserError
        from cascade_studio.services import catalog as catalog_svc
        from cascade_studio.services.finetune.tracker import JobStore, use_as_tier

        page = self.page
        try:
            tier = use_as_tier(page.ws, job_id, tier_no, replace_teacher=replace_teacher)
        except (UserError, ValueError) as exc:
            page.say(str(exc), error=True)
            return
        self.forget_comparison()  # it described the tiers before the switch
        catalog = catalog_svc.load_for_workspace(page.ws.path)
        job = JobStore(page.ws).get(job_id)
        if job and job["backend"] == "local":
            serve = (job["hyperparameters"].get("serve") or [{}])[0]
            page.say(f"Tier {tier.tier} now uses {tier.model} at {tier.base_url}. Start the server first: "
                     f"{' && '.join(serve.get('commands', []))} (other servers: SERVE.md; edit the tier's URL "
                     "on the Tiers page if you use one).")
        else:
            from cascade_studio.services.finetune.together_backend import serving_note

            note = f" {serving_note(job)}" if job and job["backend"] == "together" else ""  # a dedicated endpoint?
            page.say(f"Tier {tier.tier} now uses {tier.model} (${tier.input_price} in / ${tier.output_price} out "
                     f"per 1M).{note} Edit > Undo Tier Change puts it back.")
        window = self.window()
        if hasattr(window, "tiers_page"):  # show the new model on the Tiers page at once
            window.tiers_page.set_workspace(page.ws, catalog)


