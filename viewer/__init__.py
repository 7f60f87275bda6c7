"""Patients, studies, series and instances, the DICOM store, ingest, DICOMweb and the viewer pages."""
