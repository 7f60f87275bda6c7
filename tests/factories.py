"""factory_boy factories shared by the whole suite."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from reviews.roles import Role

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: Any) -> None:
        """`UserFactory(role=Role.RADIOLOGIST)` puts the user in that role's group."""
        if extracted:
            self.groups.add(Group.objects.get(name=extracted))
            self.is_staff = extracted == Role.ADMIN
        if create:
            self.save()  # keeps the password set above, with or without a role


DEPARTMENT = "Department (every study)"


def department_member(user: Any, role: str) -> Any:
    """Makes `user` a member of a department-wide reading project (`all_studies`, AI first and
    shown to annotators too), so they see every study and its AI as before reading projects
    narrowed who sees what. Suites that test the narrowing itself (tests/reviews) use readers without it."""
    from reviews.models import ProjectMember, ReadingProject

    project, _ = ReadingProject.objects.get_or_create(
        name=DEPARTMENT,
        defaults={
            "all_studies": True,
            "show_ai_to_annotators": True,
            "reading_mode": ReadingProject.Mode.AI_FIRST,
        },
    )
    ProjectMember.objects.get_or_create(project=project, user=user, defaults={"role": role})
    return user
