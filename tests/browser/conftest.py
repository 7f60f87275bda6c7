"""Fixtures of the browser tests: a synthetic CT study stored and indexed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fixtures.synthetic import SyntheticStudy, make_ct_study
from viewer.ingest.service import ingest_file


def ingest_study(tmp_path: Path, study: SyntheticStudy) -> SyntheticStudy:
    for k, dataset in enumerate(study.datasets):
        path = tmp_path / f"{study.series_uid}-{k:03d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        outcome = ingest_file(source=path, name=path.name, origin="import")
        assert outcome.status == "stored", outcome.reason
    return study


@pytest.fixture
def ct(tmp_path: Path, rita: Any) -> SyntheticStudy:
    """A 16-slice synthetic chest CT with two lesions, stored and indexed."""
    return ingest_study(tmp_path, make_ct_study(seed=11, slices=16, rows=128, columns=128, lesions=2))
