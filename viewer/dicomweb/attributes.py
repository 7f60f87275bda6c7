"""The attributes QIDO-RS returns for a study, series or instance row (PS3.18 Tables 10.6.3-3..5).

Study and series results carry every attribute the index holds (the required
ones and a few more that viewers show); `includefield` can add nothing else
there, and the response's Warning header says so. Instance results can add
any non-bulk attribute of the stored metadata (`includefield=all`: all of it).
"""

from __future__ import annotations

from typing import Any

from viewer.dicomweb.dicomjson import Element, element, numbers, person_name, without_bulkdata
from viewer.models import Instance, Series, Study

CHARACTER_SET = element("CS", "ISO_IR 192")  # our JSON is UTF-8
ONLINE = element("CS", "ONLINE")


def study_attributes(study: Study, root: str) -> dict[str, Element]:
    """A study result; counts come from the `n_series`/`n_instances` annotations when present."""
    patient = study.patient
    attributes = {
        "00080005": CHARACTER_SET,
        "00080020": element("DA", study.study_date.strftime("%Y%m%d") if study.study_date else None),
        "00080030": element("TM", study.study_time),
        "00080050": element("SH", study.accession_number),
        "00080056": ONLINE,
        "00080061": element("CS", *[m for m in study.modalities.split("\\") if m]),
        "00080090": person_name(study.referring_physician),
        "00081030": element("LO", study.description),
        "00081190": element("UR", f"{root}/studies/{study.study_uid}"),
        "00100010": person_name(patient.name),
        "00100020": element("LO", patient.patient_id),
        "00100021": element("LO", patient.issuer),
        "00100030": element("DA", patient.birth_date),
        "00100040": element("CS", patient.sex),
        "0020000D": element("UI", study.study_uid),
        "00200010": element("SH", study.study_id),
    }
    if hasattr(study, "n_series"):
        attributes["00201206"] = element("IS", getattr(study, "n_series", None))
        attributes["00201208"] = element("IS", getattr(study, "n_instances", None))
    return attributes


def series_attributes(series: Series, root: str, *, with_study: bool) -> dict[str, Element]:
    """A series result; with the study's attributes when the study was not in the path."""
    study = series.study
    attributes = study_attributes(study, root) if with_study else {"00080005": CHARACTER_SET}
    attributes.update(
        {
            "00080060": element("CS", series.modality),
            "00080070": element("LO", series.manufacturer),
            "0008103E": element("LO", series.description),
            "00081190": element("UR", f"{root}/studies/{study.study_uid}/series/{series.series_uid}"),
            "00180015": element("CS", series.body_part),
            "0020000D": element("UI", study.study_uid),
            "0020000E": element("UI", series.series_uid),
            "00200011": element("IS", series.series_number),
            "00200052": element("UI", series.frame_of_reference_uid),
        }
    )
    if hasattr(series, "n_instances"):
        attributes["00201209"] = element("IS", getattr(series, "n_instances", None))
    return attributes


def instance_attributes(
    instance: Instance, root: str, *, with_series: bool, with_study: bool, extra: frozenset[str] | None
) -> dict[str, Element]:
    """An instance result; `extra` names metadata tags to add (None: all of them)."""
    series = instance.series
    attributes = series_attributes(series, root, with_study=with_study) if with_series else {}
    attributes.update(
        {
            "00080005": CHARACTER_SET,
            "00080016": element("UI", instance.sop_class_uid),
            "00080018": element("UI", instance.sop_instance_uid),
            "00080056": ONLINE,
            "00081190": element(
                "UR",
                f"{root}/studies/{series.study.study_uid}/series/{series.series_uid}"
                f"/instances/{instance.sop_instance_uid}",
            ),
            "00083002": element("UI", instance.transfer_syntax_uid),
            "0020000D": element("UI", series.study.study_uid),
            "0020000E": element("UI", series.series_uid),
            "00200013": element("IS", instance.instance_number),
            "00280010": element("US", instance.rows),
            "00280011": element("US", instance.columns),
        }
    )
    if instance.number_of_frames:
        attributes["00280008"] = element("IS", instance.number_of_frames)
    attributes.update(
        {tag: value for tag, value in geometry_attributes(instance).items() if "Value" in value}
    )
    bits = _integer(getattr(instance, "bits_allocated", None))
    if bits is not None:
        attributes["00280100"] = element("US", bits)
    if extra is None or extra:
        attributes.update(_metadata_extra(instance, attributes, extra))
    return attributes


def _metadata_extra(
    instance: Instance, present: dict[str, Element], extra: frozenset[str] | None
) -> dict[str, Element]:
    stored = without_bulkdata(instance.metadata or {})
    wanted = stored.keys() if extra is None else extra & stored.keys()
    return {tag: stored[tag] for tag in wanted if tag not in present}


def geometry_attributes(instance: Instance) -> dict[str, Element]:
    """The geometry the index holds (viewers sort and place slices with it)."""
    return {
        "00180050": element("DS", instance.slice_thickness),
        "00200032": numbers("DS", instance.image_position),
        "00200037": numbers("DS", instance.image_orientation),
        "00280030": numbers("DS", instance.pixel_spacing),
    }


def _integer(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def sorted_by_tag(attributes: dict[str, Element]) -> dict[str, Element]:
    return dict(sorted(attributes.items()))
