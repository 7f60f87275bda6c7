"""A parsed QIDO-RS query as one database filter (`Q`) for the study, series or instance table.

Wildcards become anchored regular expressions written in the subset that
SQLite (Python's `re`) and PostgreSQL (AREs) read alike; values without
wildcards use plain (i)exact lookups, which use the indexes.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q

from viewer.dicomweb.qido import Criterion, DateRange, Pattern, QidoQuery, TimeRange
from viewer.models import Series

# Where each matching key lives, relative to its own table.
_STUDY_FIELDS = {
    "StudyInstanceUID": "study_uid",
    "PatientID": "patient__patient_id",
    "PatientName": "patient__name",
    "PatientBirthDate": "patient__birth_date",
    "PatientSex": "patient__sex",
    "StudyDate": "study_date",
    "StudyTime": "study_time",
    "AccessionNumber": "accession_number",
    "StudyID": "study_id",
    "StudyDescription": "description",
    "ReferringPhysicianName": "referring_physician",
}
_SERIES_FIELDS = {
    "SeriesInstanceUID": "series_uid",
    "Modality": "modality",
    "SeriesNumber": "series_number",
    "SeriesDescription": "description",
    "BodyPartExamined": "body_part",
}
_INSTANCE_FIELDS = {
    "SOPInstanceUID": "sop_instance_uid",
    "SOPClassUID": "sop_class_uid",
    "InstanceNumber": "instance_number",
}
# Per query level: the path from its table to the study, and to the series.
_PATHS = {"study": ("", ""), "series": ("study__", ""), "instance": ("series__study__", "series__")}
_STUDY_KEY = {"study": "pk", "series": "study", "instance": "series__study"}
_REGEX_SPECIAL = set(".^$+()[]{}|\\")
# Characters that separate the components of a person name ("Doe^John", "John Doe").
_NAME_SEPARATORS = "[ ^,=-]"


def query_filter(query: QidoQuery) -> Q:
    """The filter that selects what `query` matches, at its level."""
    combined = Q()
    for criterion in query.criteria:
        combined &= _criterion_filter(criterion, query)
    return combined


def _criterion_filter(criterion: Criterion, query: QidoQuery) -> Q:
    key, value = criterion.key, criterion.value
    if key.keyword == "ModalitiesInStudy":
        assert isinstance(value, tuple)
        study = OuterRef(_STUDY_KEY[query.level])
        return Q(Exists(Series.objects.filter(study=study, modality__in=value)))
    field = _field(key.keyword, query.level)
    if isinstance(value, tuple):
        return Q(**{f"{field}__in": value})
    if isinstance(value, int):
        return Q(**{field: value})
    if isinstance(value, DateRange):
        return _date_filter(field, value, as_text=key.keyword == "PatientBirthDate")
    if isinstance(value, TimeRange):
        return _time_filter(field, value)
    if key.kind == "person" and query.fuzzy:
        return _fuzzy_name_filter(field, value)
    return _pattern_filter(field, value, case_sensitive=key.kind == "text")


def _field(keyword: str, level: str) -> str:
    to_study, to_series = _PATHS[level]
    if keyword in _STUDY_FIELDS:
        return to_study + _STUDY_FIELDS[keyword]
    if keyword in _SERIES_FIELDS:
        return to_series + _SERIES_FIELDS[keyword]
    return _INSTANCE_FIELDS[keyword]


def _pattern_filter(field: str, pattern: Pattern, *, case_sensitive: bool) -> Q:
    if not pattern.has_wildcards:
        return Q(**{field if case_sensitive else f"{field}__iexact": pattern.text})
    if set(pattern.text) == {"*"}:
        return Q()  # matches everything
    lookup = "regex" if case_sensitive else "iregex"
    return Q(**{f"{field}__{lookup}": f"^{wildcard_regex(pattern.text)}$"})


def _fuzzy_name_filter(field: str, pattern: Pattern) -> Q:
    """Every word of the query begins some component of the name, in any order."""
    words = [word for word in _split_name(pattern.text) if word.strip("*")]
    combined = Q()
    for word in words:
        combined &= Q(**{f"{field}__iregex": f"(^|{_NAME_SEPARATORS}){wildcard_regex(word)}"})
    return combined


def _split_name(text: str) -> list[str]:
    for separator in "^,=":
        text = text.replace(separator, " ")
    return text.split()


def wildcard_regex(text: str) -> str:
    """A DICOM wildcard value (`*`, `?`) as a regular expression body, everything else literal."""
    parts = []
    for char in text:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char in _REGEX_SPECIAL:
            parts.append("\\" + char)
        else:
            parts.append(char)
    return "".join(parts)


def _date_filter(field: str, value: DateRange, *, as_text: bool) -> Q:
    start = value.start.strftime("%Y%m%d") if as_text and value.start else value.start
    end = value.end.strftime("%Y%m%d") if as_text and value.end else value.end
    combined = Q(**{f"{field}__gte": start}) if start else Q(**{f"{field}__isnull": False})
    if end:
        combined &= Q(**{f"{field}__lte": end})
    if as_text:
        combined &= ~Q(**{field: ""})
    return combined


def _time_filter(field: str, value: TimeRange) -> Q:
    # TM values are left-aligned (HH, HHMM, HHMMSS.F...), so text order is time
    # order; an upper bound B takes every time that begins with B ("~" sorts after digits).
    combined = ~Q(**{field: ""})
    if value.start:
        combined &= Q(**{f"{field}__gte": value.start})
    if value.end:
        combined &= Q(**{f"{field}__lt": value.end + "~"})
    return combined
