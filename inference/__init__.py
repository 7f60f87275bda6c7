"""Model registry, inference jobs and their outputs; the engine lives in inference/engine/."""
