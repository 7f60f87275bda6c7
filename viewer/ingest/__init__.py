"""DICOM ingest: checks, the archive reader and the one ingest service (viewer.ingest.service)."""
