"""manage.py run_inference --study UID [--series UID] [--model NAME [--model-version V]] [--wait]

Queues a job for each image series of the study (or the one given) with the named model, or
with every active and shadow model; --wait follows the jobs until they finish and prints
their outcome (a worker must be running, as with `make run`).
"""

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.matching import series_matches
from inference.models import InferenceJob, ModelVersion
from inference.selectors import model_by_name
from inference.services import JobError, job_request
from viewer.models import Study


class Command(BaseCommand):
    help = "Runs the AI on a study (queues jobs; --wait follows them)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True, help="Study Instance UID")
        parser.add_argument("--series", help="only this Series Instance UID")
        parser.add_argument("--model", help="model name (default: every active and shadow model)")
        parser.add_argument(
            "--model-version",
            dest="model_version",
            help="model version (default: the newest active, else shadow)",
        )
        parser.add_argument("--wait", action="store_true", help="wait for the jobs to finish")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits at most")

    def handle(self, *args, **options):
        study = Study.objects.filter(study_uid=options["study"]).first()
        if study is None:
            raise CommandError(f"no study {options['study']} is stored in Overread")
        series = study.series.all()
        if options["series"]:
            series = series.filter(series_uid=options["series"])
            if not series.exists():
                raise CommandError(f"study {study.study_uid} has no series {options['series']}")
        jobs = self._queue(list(series), options)
        if not jobs:
            raise CommandError("no series of the study matches any active or shadow model")
        for job in jobs:
            self.stdout.write(f"queued job {job.pk}: {job.model_version} on series {job.series.series_uid}")
        if options["wait"]:
            self._wait(jobs, options["timeout"])

    def _queue(self, series, options) -> list[InferenceJob]:
        if options["model"]:
            try:
                models = [model_by_name(name=options["model"], version=options["model_version"])]
            except LookupError as exc:
                raise CommandError(str(exc)) from exc
            chosen = (
                series
                if options["series"]
                else [s for s in series if series_matches(series=s, model=models[0]).ok]
            )
            if not chosen:  # say why rather than run on something the model cannot read
                reasons = "; ".join(
                    f"{s.series_uid}: {series_matches(series=s, model=models[0]).reason}" for s in series
                )
                raise CommandError(f"no series of the study matches {models[0]} ({reasons})")
            pairs = [(s, models[0]) for s in chosen]
        else:
            models = list(ModelVersion.objects.exclude(status=ModelVersion.Status.RETIRED))
            pairs = [(s, m) for s in series for m in models if series_matches(series=s, model=m).ok]
        try:
            return [job_request(series=s, model=m) for s, m in pairs]
        except JobError as exc:
            raise CommandError(str(exc)) from exc

    def _wait(self, jobs: list[InferenceJob], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = {job.pk for job in jobs}
        while pending and time.monotonic() < deadline:
            for job in InferenceJob.objects.filter(pk__in=pending):
                if job.finished:
                    pending.discard(job.pk)
                    self._report(job)
            time.sleep(0.5)
        if pending:
            raise CommandError(
                f"jobs {sorted(pending)} did not finish within {timeout:.0f} s (is a worker running?)"
            )

    def _report(self, job: InferenceJob) -> None:
        if job.status == InferenceJob.Status.SUCCEEDED:
            self.stdout.write(
                f"job {job.pk} succeeded: {job.findings.count()} findings, study score {job.study_score:.3f} "
                f"({job.triage}), {sum(job.timings.values()):.1f} s on {job.device}"
            )
        else:
            self.stdout.write(f"job {job.pk} {job.status}: {job.error}")
