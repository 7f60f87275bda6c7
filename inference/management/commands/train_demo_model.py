"""`manage.py train_demo_model`: trains the demonstration model on synthetic studies."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from inference.engine.training import DISCLAIMER, TrainingConfig, train_demo_model


class Command(BaseCommand):
    help = (
        "Trains the demonstration lesion model on synthetic CT (CPU, a few minutes), evaluates it "
        "on held-out synthetic studies and writes its weights and manifest. " + DISCLAIMER
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=0, help="seeds initialisation and sampling")
        parser.add_argument(
            "--out",
            type=Path,
            default=Path(settings.BASE_DIR) / "fixtures" / "demo_model",
            help="directory for demo_unet.pt and model.json (default: fixtures/demo_model)",
        )
        parser.add_argument("--steps", type=int, default=TrainingConfig.steps, help="optimiser steps")

    def handle(self, *args, seed, out, steps, **options):
        manifest = train_demo_model(seed=seed, out_dir=out, steps=steps, progress=self.stdout.write)
        card = manifest["model_card"]
        figures = card["evaluation"]
        self.stdout.write(
            self.style.SUCCESS(
                f"trained in {card['training']['seconds']}s; held-out ({figures['studies']} studies, "
                f"{figures['lesion_studies']} with lesions): mean Dice {figures['mean_dice']}, "
                f"AUC {figures['auc']}, sensitivity {figures['sensitivity']}, "
                f"specificity {figures['specificity']} at {figures['study_threshold']}; "
                f"lesions found: lung {figures['lesion_detection_lung']}, "
                f"soft tissue {figures['lesion_detection_soft_tissue']}"
            )
        )
        large = card.get("evaluation_512")
        if large:
            self.stdout.write(
                f"at 512 pixels ({large['studies']} studies): mean Dice {large['mean_dice']}, "
                f"false findings per study {large['false_findings_per_study']}"
            )
        self.stdout.write(
            f"wrote {out / manifest['weights']} (sha256 {manifest['sha256']}) and {out / 'model.json'}"
        )
