"""The DICOMweb server (PS3.18) under /dicomweb/: QIDO-RS search, WADO-RS retrieval, STOW-RS.

Read side: `search` (QIDO-RS), `wado` (metadata, frames, bulk data),
`retrieve` (whole instances), `rendered` (PNG/JPEG). Write side: `stow`
(STOW-RS, the ingest service's door). Every view goes through
`http.dicomweb_view` (authentication, errors) and finds studies through
`viewer.selectors.study_queryset_for_user` (access).
"""
