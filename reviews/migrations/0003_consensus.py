"""Consensus projects: the project's kind, reads per case, label schema, due date and
adjudication thresholds; each reader's answers; consensus cases; reference standards.

PostgreSQL only: like decisions (0002), the reference standards table refuses UPDATE and
DELETE (a new version supersedes the current one); the application's role should hold INSERT
and SELECT only on it. TRUNCATE stays possible for the owner (the test framework uses it).
"""

import django.core.validators
import django.db.models.deletion
import reviews.models
from django.conf import settings
from django.db import migrations, models


INSTALL = """
CREATE OR REPLACE FUNCTION reviews_referencestandard_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'reviews_referencestandard is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER reviews_referencestandard_no_update_or_delete
    BEFORE UPDATE OR DELETE ON reviews_referencestandard
    FOR EACH ROW EXECUTE FUNCTION reviews_referencestandard_reject_change();
"""

REMOVE = """
DROP TRIGGER IF EXISTS reviews_referencestandard_no_update_or_delete ON reviews_referencestandard;
DROP FUNCTION IF EXISTS reviews_referencestandard_reject_change();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)  # no parameters: the "%" in RAISE stays literal

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0002_decisions_append_only"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ConsensusCase",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("collecting", "Collecting reads"),
                            ("agreed", "Readers agree"),
                            ("adjudication", "Needs adjudication"),
                            ("adjudicated", "Adjudicated"),
                        ],
                        default="collecting",
                        max_length=16,
                    ),
                ),
                ("reads_done", models.PositiveSmallIntegerField(default=0)),
                ("agreement", models.JSONField(blank=True, default=dict)),
                ("worst_dice", models.FloatField(blank=True, null=True)),
                ("computed_from", models.JSONField(blank=True, default=list)),
                ("computed_at", models.DateTimeField(blank=True, null=True)),
                ("majority_key", models.CharField(blank=True, default="", max_length=255)),
                ("staple_key", models.CharField(blank=True, default="", max_length=255)),
                ("staple_readers", models.JSONField(blank=True, default=list)),
                ("error", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.CreateModel(
            name="ReferenceStandard",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("version", models.PositiveIntegerField()),
                ("source", models.CharField(max_length=32)),
                (
                    "fusion",
                    models.CharField(
                        blank=True,
                        choices=[("majority", "Majority"), ("staple", "Staple"), ("", "None")],
                        default="",
                        max_length=16,
                    ),
                ),
                ("readings", models.JSONField(default=list)),
                ("answers", models.JSONField(blank=True, default=dict)),
                ("findings", models.JSONField(blank=True, default=list)),
                ("mask_key", models.CharField(blank=True, default="", max_length=255)),
                ("mask_voxels", models.PositiveIntegerField(default=0)),
                ("reader_agreement", models.JSONField(blank=True, default=list)),
                ("rationale", models.TextField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.AddField(
            model_name="reading",
            name="answers",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="readingproject",
            name="adjudicate_all",
            field=models.BooleanField(
                default=False, help_text="Every case with all its reads is adjudicated, agreeing or not."
            ),
        ),
        migrations.AddField(
            model_name="readingproject",
            name="due_date",
            field=models.DateField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="readingproject",
            name="kind",
            field=models.CharField(
                choices=[
                    ("second-reading", "Second reading (one reader per study)"),
                    ("consensus", "Consensus labelling (N blinded readers per case, then adjudication)"),
                ],
                default="second-reading",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="readingproject",
            name="label_schema",
            field=models.JSONField(
                blank=True,
                default=reviews.models.default_label_schema,
                help_text='Study-level questions: {"questions": [{"code", "text", "choices": [...]}]}.',
                validators=[reviews.models.validate_label_schema],
            ),
        ),
        migrations.AddField(
            model_name="readingproject",
            name="min_dice",
            field=models.FloatField(
                default=0.7,
                help_text="A case whose worst Dice of a matched finding is below this goes to adjudication.",
                validators=[
                    django.core.validators.MinValueValidator(0.0),
                    django.core.validators.MaxValueValidator(1.0),
                ],
            ),
        ),
        migrations.AddField(
            model_name="readingproject",
            name="reads_per_case",
            field=models.PositiveSmallIntegerField(
                default=1, help_text="Readers per case: 2 or more in a consensus project."
            ),
        ),
        migrations.AddConstraint(
            model_name="readingproject",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("kind", "second-reading"), ("reads_per_case__gte", 1)),
                    models.Q(("all_studies", False), ("kind", "consensus"), ("reads_per_case__gte", 2)),
                    _connector="OR",
                ),
                name="readingproject_consensus_reads",
            ),
        ),
        migrations.AddConstraint(
            model_name="readingproject",
            constraint=models.CheckConstraint(
                condition=models.Q(("min_dice__gte", 0.0), ("min_dice__lte", 1.0)),
                name="readingproject_min_dice",
            ),
        ),
        migrations.AddField(
            model_name="consensuscase",
            name="entry",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="consensus_case",
                to="reviews.projectstudy",
            ),
        ),
        migrations.AddField(
            model_name="consensuscase",
            name="project",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="consensus_cases",
                to="reviews.readingproject",
            ),
        ),
        migrations.AddField(
            model_name="referencestandard",
            name="adjudicator",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AddField(
            model_name="referencestandard",
            name="case",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="references",
                to="reviews.consensuscase",
            ),
        ),
        migrations.AddField(
            model_name="referencestandard",
            name="supersedes",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="superseded_by",
                to="reviews.referencestandard",
            ),
        ),
        migrations.AddIndex(
            model_name="consensuscase",
            index=models.Index(fields=["project", "status", "worst_dice"], name="consensuscase_queue"),
        ),
        migrations.AddConstraint(
            model_name="consensuscase",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["collecting", "agreed", "adjudication", "adjudicated"])),
                name="consensuscase_status_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="referencestandard",
            constraint=models.UniqueConstraint(fields=("case", "version"), name="reference_version_once"),
        ),
        migrations.AddConstraint(
            model_name="referencestandard",
            constraint=models.UniqueConstraint(
                condition=models.Q(("supersedes__isnull", True)),
                fields=("case",),
                name="reference_one_first_per_case",
            ),
        ),
        migrations.AddConstraint(
            model_name="referencestandard",
            constraint=models.CheckConstraint(
                condition=models.Q(("version__gte", 1)), name="reference_version_positive"
            ),
        ),
        migrations.AddConstraint(
            model_name="referencestandard",
            constraint=models.CheckConstraint(
                condition=models.Q(("rationale", ""), _negated=True), name="reference_rationale_given"
            ),
        ),
        migrations.RunPython(_on_postgresql(INSTALL), _on_postgresql(REMOVE), elidable=False),
    ]
