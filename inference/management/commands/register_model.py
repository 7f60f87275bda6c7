"""manage.py register_model: add a model version to the registry.

    manage.py register_model --manifest fixtures/demo_model/model.json [--status active]
    manage.py register_model --name chest-nodule --model-version 2.0.0 --weights net.pt --format torchscript \
        --labels nodule --threshold 0.5 --study-threshold 0.5 --urgent 0.9 --priority 0.6 \
        [--input-spec spec.json] [--card card.json] [--status shadow]
    manage.py register_model --name x --model-version 1.0.0 --weights sd.pt --format state_dict \
        --entry-point mypkg.nets:UNet --entry-kwargs '{"channels": 16}' ...

The weights are hashed, loaded and run on a small input before anything is saved.
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.registry import ModelDescription, RegistryError, model_register


class Command(BaseCommand):
    help = "Registers a model version (TorchScript file, or state_dict plus a Python entry point)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--manifest", type=Path, help="a model.json manifest (as fixtures/demo_model/)")
        parser.add_argument("--status", default="shadow", choices=["active", "shadow", "retired"])
        parser.add_argument("--name")
        parser.add_argument("--model-version", dest="model_version")
        parser.add_argument("--weights", type=Path)
        parser.add_argument("--format", choices=["torchscript", "state_dict"])
        parser.add_argument("--entry-point", default="", help="package.module:callable (state_dict)")
        parser.add_argument("--entry-kwargs", default="{}", help="JSON object of keyword arguments")
        parser.add_argument("--labels", default="lesion", help="comma-separated, one per output channel")
        parser.add_argument("--threshold", type=float, default=0.5)
        parser.add_argument("--study-threshold", type=float)
        parser.add_argument("--urgent", type=float, default=0.9)
        parser.add_argument("--priority", type=float, default=0.5)
        parser.add_argument("--input-spec", type=Path, help="JSON file: modality, sop_class_uids, ...")
        parser.add_argument("--card", type=Path, help="JSON file: the model card")
        parser.add_argument("--demonstration", action="store_true", help="trained on synthetic data")

    def handle(self, *args, **options):
        description = self._description(options)
        try:
            model = model_register(description=description, status=options["status"])
        except RegistryError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"registered {model} ({model.status}), weights sha256 {model.weights_sha256}")

    def _description(self, options) -> ModelDescription:
        if options["manifest"]:
            try:
                return ModelDescription.from_manifest(options["manifest"])
            except RegistryError as exc:
                raise CommandError(str(exc)) from exc
        missing = [flag for flag in ("name", "model_version", "weights", "format") if not options[flag]]
        if missing:
            flags = ", ".join("--" + m.replace("_", "-") for m in missing)
            raise CommandError(f"give --manifest FILE, or also {flags}")
        return ModelDescription(
            name=options["name"],
            version=options["model_version"],
            format=options["format"],
            weights=options["weights"],
            labels=[label.strip() for label in options["labels"].split(",") if label.strip()],
            threshold=options["threshold"],
            study_threshold=options["study_threshold"] or options["threshold"],
            triage_urgent=options["urgent"],
            triage_priority=options["priority"],
            entry_point=options["entry_point"],
            entry_kwargs=_json_object(options["entry_kwargs"], "--entry-kwargs"),
            input_spec=_json_file(options["input_spec"], "--input-spec"),
            model_card=_json_file(options["card"], "--card"),
            demonstration=options["demonstration"],
        )


def _json_object(text: str, flag: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{flag}: not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CommandError(f"{flag}: expected a JSON object")
    return value


def _json_file(path: Path | None, flag: str) -> dict:
    if path is None:
        return {}
    try:
        return _json_object(path.read_text(), flag)
    except OSError as exc:
        raise CommandError(f"{flag}: cannot read {path}: {exc.strerror}") from exc
