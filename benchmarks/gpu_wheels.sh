#!/usr/bin/env bash
# Fetch, on a machine with a package registry, the wheels that benchmarks/gpu_check.sh installs on a
# GPU machine that has none: spaCy and thinc (and what they need beyond PyTorch, NumPy and the
# scientific stack: about 57 MiB); with --with-transformers also the transformers / tokenizers /
# huggingface_hub versions the tests are written against (14 MiB more), for a machine whose own
# transformers lacks LUKE. For CPython 3.12 on x86-64 Linux; into .whl/ (git ignores it).
#
#   bash benchmarks/gpu_wheels.sh [--with-transformers] [FOLDER] [PYTHON_VERSION]
set -euo pipefail
HF=()
if [ "${1:-}" = "--with-transformers" ]; then
  HF=(transformers==4.53.2 tokenizers==0.21.4 huggingface_hub==0.36.2)
  shift
fi
DEST=${1:-.whl}
PYVER=${2:-3.12}
PY=${PYTHON:-python3}
WHEELS=(
  spacy==3.8.18 thinc==8.3.14 blis==1.3.4 cymem==2.0.16 preshed==3.0.15 murmurhash==1.0.16 srsly==2.5.6
  wasabi==1.1.3 catalogue==2.0.10 confection==1.3.4 weasel==1.0.1 spacy-legacy==3.0.12 spacy-loggers==1.0.5
  cloudpathlib==0.26.0 smart_open==9.0.4 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0
  typing-inspection==0.4.5 "${HF[@]}"
)
mkdir -p "$DEST"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${WHEELS[@]}"
du -sh "$DEST"
