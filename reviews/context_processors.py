"""Template context every page needs about the signed-in reader."""

from typing import Any

from django.http import HttpRequest

from reviews.roles import user_roles


def roles(request: HttpRequest) -> dict[str, Any]:
    return {"roles": sorted(user_roles(request.user))}
