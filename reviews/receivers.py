"""Signal receivers of the reviews app, connected in ReviewsConfig.ready()."""

from __future__ import annotations

from typing import Any

from reviews.services import project_triage_refresh, study_arrived


def on_instance_stored(*, study_uid: str, origin: str, **_: Any) -> None:
    if origin == "derived":  # what Overread made itself belongs to studies already there
        return
    study_arrived(study_uid=study_uid)


def on_job_finished(*, study_pk: int, **_: Any) -> None:
    project_triage_refresh(study_pk=study_pk)
