"""HTML pages and htmx partials of the reviews app."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def worklist(request: HttpRequest) -> HttpResponse:
    """The reader's worklist: studies to read, most urgent first."""
    return render(request, "reviews/worklist.html")
