"""Every code the derived objects use, in one table.

Standard DCM, SCT, UCUM, LOINC and NCIt codes where a real one exists; the rest come from
one declared local scheme, 99OVERREAD, which is named in each object's Coding Scheme
Identification Sequence. DICOM has no standard code yet for a reader accepting or
overriding an AI finding, or agreeing with an AI triage (IHE AIRAI is settling this): when
one arrives, change it here. Local code values are at most 16 characters (SH).
"""

from __future__ import annotations

from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.coding import Code

LOCAL_SCHEME = "99OVERREAD"
LOCAL_SCHEME_NAME = "Overread local codes"
LOCAL_SCHEME_ORGANISATION = "Overread"
LOCAL_SCHEME_VERSION = "1"


def _local(value: str, meaning: str) -> Code:
    return Code(value, LOCAL_SCHEME, meaning)


# What a segment or a measurement group is about.
MORPHOLOGICALLY_ABNORMAL_STRUCTURE = Code("49755003", "SCT", "Morphologically abnormal structure")
LESION = Code("52988006", "SCT", "Lesion")
NODULE = Code("27925004", "SCT", "Nodule")
FINDING_TYPES: dict[str, Code] = {"lesion": LESION, "nodule": NODULE}

# Who and how.
ARTIFICIAL_INTELLIGENCE = Code("123110", "DCM", "Artificial Intelligence")  # CID 7162
READER = Code("C28747", "NCIt", "Reader")  # CID 7453 Performing Roles
ADJUDICATOR = Code("C96561", "NCIt", "Adjudicator")  # CID 7453
PHYSICIAN = Code("309343006", "SCT", "Physician")  # CID 7452 Organizational Roles
CT_UNSPECIFIED_BODY_REGION = Code("25045-6", "LN", "CT unspecified body region")  # CID 100

# The TID 1500 containers highdicom does not name, and the language it defaults to.
IMAGING_MEASUREMENT_REPORT = Code("126000", "DCM", "Imaging Measurement Report")  # CID 7021
PROCEDURE_REPORTED = Code("121058", "DCM", "Procedure reported")
QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")  # TID 1500 row 12
ENGLISH = Code("en-US", "RFC5646", "English (United States)")

# BodyPartExamined -> CID 4031 Common Anatomic Regions (PS3.16 Annex L), for Frame Anatomy.
ENTIRE_BODY = Code("38266002", "SCT", "Entire body")
BODY_PARTS: dict[str, Code] = {
    "CHEST": Code("816094009", "SCT", "Chest"),
    "ABDOMEN": Code("818981001", "SCT", "Abdomen"),
    "PELVIS": Code("816092008", "SCT", "Pelvis"),
    "ABDOMENPELVIS": Code("818982008", "SCT", "Abdomen and Pelvis"),
    "CHESTABDOMEN": Code("416550000", "SCT", "Chest and Abdomen"),
    "CHESTABDPELVIS": Code("416775004", "SCT", "Chest, Abdomen and Pelvis"),
    "HEAD": Code("69536005", "SCT", "Head"),
    "NECK": Code("45048000", "SCT", "Neck"),
}

# Measurements and their units.
VOLUME = Code("118565006", "SCT", "Volume")
MAXIMUM = Code("56851009", "SCT", "Maximum")  # CID 7464 derivation modifiers
MEAN = Code("373098007", "SCT", "Mean")
CUBIC_MILLIMETRE = Code("mm3", "UCUM", "cubic millimeter")
NO_UNITS = Code("1", "UCUM", "no units")

# The Parametric Map's quantity: DCM has a real one (CID 7180 and CID 217 Visual Explanation).
MODEL_ATTENTION = Code("130404", "DCM", "Saliency")

# Local: what the model says and what the reader decided.
AI_PROBABILITY = _local("AIPROB", "AI probability")
STUDY_SCORE = _local("STUDYSCORE", "Study triage score")
READER_DECISION = _local("DECISION", "Reader decision")
ACCEPTED = _local("ACCEPTED", "Accepted by reader")
EDITED = _local("EDITED", "Edited by reader")
OVERRIDDEN = _local("OVERRIDDEN", "Overridden by reader")
ADDED_BY_READER = _local("ADDED", "Added by reader")
OVERRIDE_REASON = _local("REASON", "Override reason")
FALSE_POSITIVE_ARTEFACT = _local("FP-ARTEFACT", "False positive: artefact")
FALSE_POSITIVE_BENIGN = _local("FP-BENIGN", "False positive: benign finding")
WRONG_LOCATION = _local("WRONG-LOCATION", "Wrong location")
WRONG_LABEL = _local("WRONG-LABEL", "Wrong label")
OTHER_REASON = _local("OTHER", "Other reason")

# Local: the AI's study-level triage, and the reader's verdict on the study.
AI_TRIAGE = _local("TRIAGE", "AI triage level")
URGENT = _local("URGENT", "Urgent")
PRIORITY = _local("PRIORITY", "Priority")
ROUTINE = _local("ROUTINE", "Routine")
TRIAGE_AGREEMENT = _local("TRIAGE-AGREEMENT", "Agreement with AI triage")
AGREE = _local("AGREE", "Agrees with AI triage")
DISAGREE = _local("DISAGREE", "Disagrees with AI triage")
IMPRESSION = Code("121073", "DCM", "Impression")  # the reader's final impression
UNAIDED_IMPRESSION = _local("UNAIDED-IMPR", "Impression before AI")

DECISIONS: dict[str, Code] = {
    "accepted": ACCEPTED,
    "edited": EDITED,
    "overridden": OVERRIDDEN,
    "added": ADDED_BY_READER,
}
OVERRIDE_REASONS: dict[str, Code] = {
    "false_positive_artefact": FALSE_POSITIVE_ARTEFACT,
    "false_positive_benign": FALSE_POSITIVE_BENIGN,
    "wrong_location": WRONG_LOCATION,
    "wrong_label": WRONG_LABEL,
    "other": OTHER_REASON,
}
TRIAGE_LEVELS: dict[str, Code] = {"urgent": URGENT, "priority": PRIORITY, "routine": ROUTINE}
TRIAGE_AGREEMENTS: dict[str, Code] = {"agree": AGREE, "disagree": DISAGREE}


def finding_type(label: str) -> Code:
    """The SNOMED code for a model's label ("lesion", "nodule"); ValueError for any other,
    so a new label is added here on purpose rather than filed under the wrong code."""
    try:
        return FINDING_TYPES[label.lower()]
    except KeyError:
        known = ", ".join(sorted(FINDING_TYPES))
        raise ValueError(f"no code for finding label {label!r}; known labels: {known}") from None


def anatomic_region(body_part_examined: str) -> Code:
    """The region code for a BodyPartExamined value; Entire body when it is unknown."""
    return BODY_PARTS.get(body_part_examined.strip().upper(), ENTIRE_BODY)


def local_scheme_item() -> CodingSchemeIdentificationItem:
    """The Coding Scheme Identification Sequence item declaring 99OVERREAD."""
    return CodingSchemeIdentificationItem(
        designator=LOCAL_SCHEME,
        name=LOCAL_SCHEME_NAME,
        version=LOCAL_SCHEME_VERSION,
        responsible_organization=LOCAL_SCHEME_ORGANISATION,
    )
