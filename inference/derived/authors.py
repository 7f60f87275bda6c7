"""Who made a derived object: the AI model (a device) or a reader (a person), and how.

The same descriptions serve the inference jobs (a Device with its AlgorithmInfo) and the
reviews app (a Person, with an AlgorithmInfo when the reader edited the model's mask).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypedDict

import highdicom as hd
from pydicom.sr.coding import Code

from . import codes

OVERREAD_VERSION = "0.1.0"


@dataclass(frozen=True)
class Device:
    """The AI model as an observer: name and version as the registry knows them, and a
    stable UID for this model version (the SR's Device Observer UID)."""

    name: str
    version: str
    uid: str
    manufacturer: str = "Overread"
    model_card: str = ""  # a URL or short reference; recorded as an algorithm parameter


@dataclass(frozen=True)
class Person:
    """A reader as an observer. `name` is a DICOM person name ("Family^Given")."""

    name: str
    login: str = ""
    organisation: str = ""
    role_in_organisation: Code | None = None  # CID 7452, e.g. codes.PHYSICIAN
    role_in_procedure: Code | None = None  # CID 7453, e.g. codes.READER, codes.ADJUDICATOR


Author = Device | Person


@dataclass(frozen=True)
class AlgorithmInfo:
    """The algorithm that made (or helped make) an object: SEG Algorithm Identification
    and the SR's TID 4019."""

    name: str
    version: str
    family: Code = codes.ARTIFICIAL_INTELLIGENCE
    parameters: Mapping[str, str] = field(default_factory=dict)
    source: str = "Overread"

    @classmethod
    def for_device(cls, device: Device, *, parameters: Mapping[str, str] | None = None) -> AlgorithmInfo:
        """The model itself as the algorithm; its model card joins the parameters."""
        merged = dict(parameters or {})
        if device.model_card:
            merged.setdefault("model_card", device.model_card)
        return cls(name=device.name, version=device.version, parameters=merged, source=device.manufacturer)

    def identification_sequence(self) -> hd.AlgorithmIdentificationSequence:
        return hd.AlgorithmIdentificationSequence(
            name=self.name,
            family=self.family,
            version=self.version,
            source=self.source or None,
            parameters=dict(sorted(self.parameters.items())) or None,
        )

    def sr_identification(self) -> hd.sr.AlgorithmIdentification:
        return hd.sr.AlgorithmIdentification(
            name=self.name,
            version=self.version,
            parameters=[f"{k}={v}" for k, v in sorted(self.parameters.items())] or None,
            family=self.family,
            manufacturer=self.source or None,
        )


class EquipmentKwargs(TypedDict):
    manufacturer: str
    manufacturer_model_name: str
    software_versions: str
    device_serial_number: str


@dataclass(frozen=True)
class Equipment:
    """The software that writes the object (General and Enhanced General Equipment)."""

    manufacturer: str
    model_name: str
    software_version: str
    serial_number: str

    def as_kwargs(self) -> EquipmentKwargs:
        """highdicom's equipment keyword arguments, the same for SEG, Parametric Map and SR."""
        return {
            "manufacturer": self.manufacturer,
            "manufacturer_model_name": self.model_name,
            "software_versions": self.software_version,
            "device_serial_number": self.serial_number,
        }

    @classmethod
    def for_author(cls, author: Author) -> Equipment:
        """The model for a device author; the Overread workstation for a person."""
        if isinstance(author, Device):
            return cls(author.manufacturer, author.name, author.version, author.uid)
        return WORKSTATION


WORKSTATION = Equipment("Overread", "Overread workstation", OVERREAD_VERSION, "overread")


def observer_context(author: Author) -> hd.sr.ObserverContext:
    """TID 1002 for either kind of author."""
    if isinstance(author, Device):
        return hd.sr.ObserverContext(
            observer_type=hd.sr.CodedConcept.from_code(Code("121007", "DCM", "Device")),
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=author.uid,
                name=author.name,
                manufacturer_name=author.manufacturer,
                model_name=f"{author.name} {author.version}",
            ),
        )
    return hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept.from_code(Code("121006", "DCM", "Person")),
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=author.name,
            login_name=author.login or None,
            organization_name=author.organisation or None,
            role_in_organization=author.role_in_organisation,
            role_in_procedure=author.role_in_procedure,
        ),
    )
