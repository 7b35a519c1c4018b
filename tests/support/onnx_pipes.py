"""The ONNX tests' pipes and tolerance: ONNX Runtime against our float32 torch model."""
from __future__ import annotations

ATOL = 1e-4
# kind: (factory, checkpoint fixture, max_batch_cost: small, so that the test docs give batches of several sizes)
PIPES = {
    "ner": ("luke_ner", "ner_checkpoint", 250),
    "typer": ("luke_entity_typer", "typer_checkpoint", 150),
    "relation": ("luke_relation_extractor", "relation_checkpoint", 150),
    "encoder": ("luke_entity_vectors", "encoder_checkpoint", 60),
}
