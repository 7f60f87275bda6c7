"""Derived DICOM from the engine's results and the readers' work: SEG, Parametric Map, SR.

Plain functions, no Django: the inference jobs write the model's objects with them, and
the reviews app the readers' SEG and SR. Every writer takes its UIDs and content date and
time from the caller and returns the same dataset for the same arguments, so a redelivered
job overwrites its objects instead of duplicating them.
"""

from . import codes
from ._common import SourceUnsupported, derived_uid, quantize
from .authors import WORKSTATION, AlgorithmInfo, Author, Device, Equipment, Person
from .files import ValidatorMissing, dciodvfy_check, dciodvfy_messages, to_part10_bytes
from .pmap import parametric_map, stored_to_real
from .seg import SegmentSpec, segment_tracking_uid, segmentation
from .sr import Evaluation, Note, findings_sr

__all__ = [
    "WORKSTATION",
    "AlgorithmInfo",
    "Author",
    "Device",
    "Equipment",
    "Evaluation",
    "Note",
    "Person",
    "SegmentSpec",
    "SourceUnsupported",
    "ValidatorMissing",
    "codes",
    "dciodvfy_check",
    "dciodvfy_messages",
    "derived_uid",
    "findings_sr",
    "parametric_map",
    "quantize",
    "segment_tracking_uid",
    "segmentation",
    "stored_to_real",
    "to_part10_bytes",
]
