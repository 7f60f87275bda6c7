"""Django admin of the reviews app: projects and their members, worklist entries and
assignments (written through reviews.services, so round-robin, consensus assignment and the
audit trail apply), readings and decisions (read-only: they change only through the reading
workflow), consensus cases and reference standards (read-only: computed, and recorded by
adjudicators through the API)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from reviews.models import (
    READER_ROLES,
    Assignment,
    ConsensusCase,
    Decision,
    FeedbackExport,
    ProjectMember,
    ProjectStudy,
    Reading,
    ReadingProject,
    ReferenceStandard,
)
from reviews.services import (
    assignment_create,
    assignment_round_robin,
    consensus_assign,
    consensus_reassign_inactive,
    not_a_reader,
    project_studies_add,
)
from viewer.admin import ReadOnlyAdmin


class ProjectMemberInline(admin.TabularInline):
    model = ProjectMember
    extra = 1
    fields = ["user", "role"]
    autocomplete_fields = ["user"]


@admin.register(ReadingProject)
class ReadingProjectAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "reading_mode",
        "reads_per_case",
        "show_ai_to_annotators",
        "all_studies",
        "auto_enrol",
        "due_date",
        "active",
    ]
    list_filter = ["kind", "reading_mode", "active"]
    search_fields = ["name"]
    inlines = [ProjectMemberInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "kind",
                    "reading_mode",
                    "override_reasons",
                    "show_ai_to_annotators",
                    "triage_in_worklist",
                    "all_studies",
                    "auto_enrol",
                    "active",
                ]
            },
        ),
        (
            "Consensus labelling",
            {
                "fields": ["reads_per_case", "label_schema", "due_date", "min_dice", "adjudicate_all"],
                "description": "For consensus projects: each case is read by this many readers, "
                "blind to each other; removing a reader hands their unfinished cases on.",
            },
        ),
    ]
    actions = ["reassign_inactive_readers"]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # readings and decisions keep their project: deactivate it instead

    def has_reassign_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("reviews.add_assignment"))

    @admin.action(description="Hand on the unfinished cases of deactivated readers", permissions=["reassign"])
    def reassign_inactive_readers(self, request: HttpRequest, queryset: QuerySet[ReadingProject]) -> None:
        done = sum(
            consensus_reassign_inactive(project=project, by=request.user)
            for project in queryset.filter(kind=ReadingProject.Kind.CONSENSUS)
        )
        messages.success(request, f"{done} case{'' if done == 1 else 's'} reassigned.")


class AssignForm(forms.Form):
    reader = forms.ModelChoiceField(queryset=get_user_model().objects.none())

    def __init__(self, *args, projects=(), **kwargs):
        super().__init__(*args, **kwargs)
        reader = self.fields["reader"]
        assert isinstance(reader, forms.ModelChoiceField)
        reader.queryset = (
            get_user_model()
            .objects.filter(memberships__project__in=projects, memberships__role__in=READER_ROLES)
            .distinct()
            .order_by("username")
        )


@admin.register(ProjectStudy)
class ProjectStudyAdmin(admin.ModelAdmin):
    list_display = ["study", "project", "ai_triage", "reading_status", "waiting_since", "added_at"]
    list_filter = ["project", "ai_triage", "reading_status"]
    search_fields = ["study__study_uid", "study__accession_number", "study__patient__patient_id"]
    list_select_related = ["study", "project"]
    autocomplete_fields = ["study"]
    fields = ["project", "study"]
    actions = ["assign_to_reader", "assign_round_robin"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_assign_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("reviews.add_assignment"))

    def save_model(self, request, obj, form, change):
        # Joining a project goes through the service: round-robin assignment and the audit trail.
        entries = project_studies_add(project=obj.project, studies=[obj.study], user=request.user)
        if entries:
            obj.pk = entries[0].pk

    @admin.action(description="Assign the selected studies to a reader…", permissions=["assign"])
    def assign_to_reader(self, request: HttpRequest, queryset: QuerySet[ProjectStudy]):
        projects = {entry.project for entry in queryset.select_related("project")}
        form = AssignForm(request.POST if "reader" in request.POST else None, projects=projects)
        if form.is_bound and form.is_valid():
            reader, done = form.cleaned_data["reader"], 0
            for entry in queryset.select_related("project", "study__patient"):
                if not_a_reader(project=entry.project, reader=reader) is None:
                    assignment_create(
                        project=entry.project, study=entry.study, reader=reader, user=request.user
                    )
                    done += 1
            messages.success(request, f"{done} stud{'y' if done == 1 else 'ies'} assigned to {reader}.")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Assign studies to a reader",
            "form": form,
            "entries": queryset,
            "action": "assign_to_reader",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/reviews/assign.html", context)

    @admin.action(description="Assign the selected studies round-robin", permissions=["assign"])
    def assign_round_robin(self, request: HttpRequest, queryset: QuerySet[ProjectStudy]) -> None:
        done = 0
        for entry in queryset.select_related("project", "study"):
            if entry.project.is_consensus:  # its missing readers, the least loaded first
                done += bool(consensus_assign(project=entry.project, studies=[entry.study]))
            elif assignment_round_robin(project=entry.project, study=entry.study) is not None:
                done += 1
        messages.success(request, f"{done} stud{'y' if done == 1 else 'ies'} assigned round-robin.")


class AssignmentForm(forms.ModelForm):
    class Meta:
        model = Assignment
        fields = ["project", "study", "reader"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        project, reader = data.get("project"), data.get("reader")
        if project is not None and reader is not None:
            problem = not_a_reader(project=project, reader=reader)
            if problem is not None:
                self.add_error("reader", f"{problem}.")
        return data


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    form = AssignmentForm
    list_display = ["study", "project", "reader", "assigned_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["study__study_uid", "reader__username"]
    list_select_related = ["study", "project", "reader", "assigned_by"]
    autocomplete_fields = ["study", "reader"]
    fields = ["project", "study", "reader"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        saved = assignment_create(project=obj.project, study=obj.study, reader=obj.reader, user=request.user)
        obj.pk = saved.pk


@admin.register(Reading)
class ReadingAdmin(ReadOnlyAdmin):
    list_display = ["pk", "study", "project", "reader", "phase", "version", "submitted_at"]
    list_filter = ["project", "phase", "reading_mode"]
    search_fields = ["study__study_uid", "reader__username"]
    list_select_related = ["study", "project", "reader"]
    exclude = ["slice_uids"]


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["pk", "reading", "target", "kind", "phase", "reader", "dice", "confidence", "created_at"]
    list_filter = ["kind", "phase", "project", "reading_mode"]
    search_fields = ["reading__study__study_uid", "reader__username"]
    list_select_related = ["reading", "reader"]


@admin.register(FeedbackExport)
class FeedbackExportAdmin(ReadOnlyAdmin):
    list_display = ["pk", "requested_by", "status", "written", "total", "created_at", "finished_at"]


@admin.register(ConsensusCase)
class ConsensusCaseAdmin(ReadOnlyAdmin):
    list_display = ["pk", "entry", "project", "status", "reads_done", "worst_dice", "computed_at"]
    list_filter = ["project", "status"]
    search_fields = ["entry__study__study_uid"]
    list_select_related = ["entry__study", "project"]


@admin.register(ReferenceStandard)
class ReferenceStandardAdmin(ReadOnlyAdmin):
    list_display = ["pk", "case", "version", "source", "fusion", "adjudicator", "created_at"]
    list_filter = ["source", "fusion"]
    search_fields = ["case__entry__study__study_uid", "adjudicator__username"]
    list_select_related = ["case", "adjudicator"]
