"""Largest |ours - transformers| per LUKE head, over the test configurations (run by hand).

    python benchmarks/parity_report.py

Same checkpoints and inputs as tests/test_model_parity.py: random weights, entity-aware and
plain attention, entity_emb_size != hidden_size, a -lite vocabulary, padded words and entities,
.safetensors and .bin, eager and SDPA attention, float32.
"""
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.tests_on_path()
import spacy_luke.model as ours  # noqa: E402
from support.checkpoints import HEADS, OUTPUT_KEYS, make_inputs, make_labels, save_hf_checkpoint  # noqa: E402


def main() -> None:
    worst = {}
    with tempfile.TemporaryDirectory() as tmp:
        for head in HEADS:
            for variant in ("entity_aware", "plain", "lite_vocab"):
                for fmt in ("safetensors", "bin"):
                    folder = Path(tmp) / f"{head}-{variant}-{fmt}"
                    reference = save_hf_checkpoint(folder, head, variant, fmt)
                    model = getattr(ours, head).from_pretrained(folder)
                    inputs = make_inputs(head, reference.config)
                    labels = make_labels(head, reference.config, inputs)
                    with torch.no_grad():
                        expected = reference(**inputs, **labels)
                        for impl in ("eager", "sdpa"):
                            model.set_attention_implementation(impl)
                            got = model(**inputs, **labels)
                            for key in OUTPUT_KEYS:
                                a, b = getattr(expected, key, None), getattr(got, key, None)
                                if a is not None and b is not None:
                                    diff = (a - b).abs().max().item()
                                    if diff >= worst.get(head, (0.0,))[0]:
                                        worst[head] = (diff, key, variant, fmt, impl)
    print(f"{'head':36} {'max |diff|':>11}  where")
    for head in HEADS:
        diff, key, variant, fmt, impl = worst[head]
        print(f"{head:36} {diff:11.2e}  {key} ({variant}, {fmt}, {impl})")


if __name__ == "__main__":
    main()
