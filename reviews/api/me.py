"""Who the caller is (integrations check their token with it)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviews.roles import user_roles


class CurrentUserApi(APIView):
    """Who the caller is and which roles they hold (integrations check their token with it)."""

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        roles = serializers.ListField(child=serializers.CharField())

    serializer_class = OutputSerializer

    def get(self, request: Request) -> Response:
        data = {"username": request.user.get_username(), "roles": sorted(user_roles(request.user))}
        return Response(self.OutputSerializer(data).data)
