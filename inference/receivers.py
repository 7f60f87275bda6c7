"""Signal receivers of the inference app, connected in InferenceConfig.ready()."""

from __future__ import annotations

from typing import Any

from inference.services import series_pending_mark


def on_instance_stored(*, series_uid: str, origin: str, **_: Any) -> None:
    if origin == "derived":  # what Overread made itself (AI results, reader objects) is not read again
        return
    series_pending_mark(series_uid=series_uid)
