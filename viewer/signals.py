"""What the viewer app tells others, without knowing who listens.

The viewer owns ingest and must not know about models or reviews; apps that
act on new images (inference) connect to these signals in their AppConfig.
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent after the transaction that stored a new instance commits, with keyword
# arguments study_uid, series_uid, sop_instance_uid and origin. A series has no
# "complete" marker in DICOM: listeners wait for it to stop growing.
instance_stored = Signal()
