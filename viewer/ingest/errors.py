"""Why an input was refused: a specific message and the STOW-RS Failure Reason it maps to."""

from __future__ import annotations


class FailureReason:
    """Failure Reason (0008,1197) values of PS3.18 Annex I, as ingest uses them.

    - OUT_OF_RESOURCES: too big (file, archive, decoded pixels) or the store is full.
    - DOES_NOT_MATCH: the data set contradicts itself, its SOP class or the request
      (missing Type 1 attributes, pixel length, Study UID other than the URL's).
    - CANNOT_UNDERSTAND: not DICOM, damaged, truncated, undecodable.
    - TRANSFER_SYNTAX_NOT_SUPPORTED: a transfer syntax we cannot decode.
    - PROCESSING_FAILURE: it conflicts with what is stored (same UID, other bytes;
      a study of another patient), or storing failed.
    - SOP_CLASS_NOT_SUPPORTED: not an image, segmentation, parametric map or report.
    """

    OUT_OF_RESOURCES = 0xA700
    DOES_NOT_MATCH = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
    PROCESSING_FAILURE = 0x0110
    SOP_CLASS_NOT_SUPPORTED = 0x0122


class Rejected(Exception):
    """The input is refused; `reason` says why in words a person can act on.

    `security` marks input that looks hostile rather than merely damaged (an
    archive entry escaping its folder, a size claim past the limits): it is
    audited as a Security Alert.
    """

    def __init__(
        self, reason: str, failure_code: int = FailureReason.CANNOT_UNDERSTAND, *, security: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failure_code = failure_code
        self.security = security
