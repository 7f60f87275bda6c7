"""Panels other apps add to the study page's right column.

The viewer knows nothing of reading projects; the reviews app registers a panel (the
reading: unaided read, lock, reveal, decisions, submit) with `study_panel_register` when it
starts. A panel may ask the page to keep the AI out of sight (a blinded read): then the
page does not load the AI result, and the panel shows the AI itself once the reader may see
it. (Which series the page lists is viewer.selectors' question, as everywhere.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from viewer.models import Study


@dataclass(frozen=True)
class StudyPanel:
    template: str  # rendered inside the page's #side-panel
    context: dict[str, Any] = field(default_factory=dict)
    hides_ai: bool = False  # the page loads no AI result


# (request, study) -> the panel for this user and study, or None.
PanelProvider = Callable[[HttpRequest, Study], StudyPanel | None]
_providers: list[PanelProvider] = []


def study_panel_register(provider: PanelProvider) -> None:
    """Adds a panel to every study page (called once, from an AppConfig.ready())."""
    if provider not in _providers:
        _providers.append(provider)


def study_panels(request: HttpRequest, study: Study) -> list[StudyPanel]:
    """The panels this user gets on this study's page, in registration order."""
    return [panel for provider in _providers if (panel := provider(request, study)) is not None]
