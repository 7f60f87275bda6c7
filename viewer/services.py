"""Writes and workflows of the viewer app (keyword-only, typed, named <entity>_<action>).

Ingest (viewer.ingest) is the only way instances get in; `instances_delete` is the
only way they go out: derived objects that Overread itself made (an AI job's SEG,
Parametric Map and SR) are removed before the job that made them writes them again,
so a redelivered or re-run job replaces them instead of being refused as a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count

from viewer.ingest.rows import study_modalities_refresh
from viewer.models import Instance, Series
from viewer.store import store_delete


def instances_delete(*, sop_instance_uids: Iterable[str]) -> int:
    """Removes instances (rows and files) and any series left empty; returns how many went.

    Only for objects Overread derived itself: originals from a modality or the PACS are
    never deleted through the application.
    """
    uids = list(sop_instance_uids)
    with transaction.atomic():
        doomed = list(
            Instance.objects.select_for_update()
            .filter(sop_instance_uid__in=uids)
            .select_related("series__study")
        )
        keys = [instance.storage_key for instance in doomed]
        studies = {instance.series.study for instance in doomed}
        series_pks = {instance.series.pk for instance in doomed}
        Instance.objects.filter(pk__in=[instance.pk for instance in doomed]).delete()
        Series.objects.filter(pk__in=series_pks).annotate(n=Count("instances")).filter(n=0).delete()
        for study in studies:
            study_modalities_refresh(study)
        # After the commit: a rolled-back transaction keeps the files its rows point at.
        transaction.on_commit(lambda: _delete_files(keys))
    return len(doomed)


def _delete_files(keys: list[str]) -> None:
    for key in keys:
        store_delete(key)
