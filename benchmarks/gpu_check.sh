#!/usr/bin/env bash
# The GPU check, in one run of at most 8 minutes on one GPU: the tests marked `gpu` (every pipe in
# every precision and engine that runs on CUDA against CPU float32, annotate --gpu-id, training
# steps on CUDA, spacy.require_gpu()), then benchmarks/bench_gpu.py (words/s and peak GPU memory
# against transformers' LUKE). Results as JSON under $OUT (default: /tmp/gpu-check-out):
#   gpu_check.json   the summary: device, versions, test counts and failures, the bench's file
#   gpu_tests.xml / gpu_tests.log, bench_gpu.json / bench_gpu.log
# From the repository root:   bash benchmarks/gpu_check.sh
# Without a CUDA device it says so in one line, writes gpu_check.json {"cuda": false} and exits 3.
# A machine without spaCy gets it from wheels in .whl/ (fetch them elsewhere with
# benchmarks/gpu_wheels.sh). TESTS_S / BENCH_S: the time limits of the two parts (seconds).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check-out}
PY=${PYTHON:-python3}
TESTS_S=${TESTS_S:-210}
BENCH_S=${BENCH_S:-210}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-check-site .whl/*.whl \
    || { echo "gpu_check: the wheels in .whl/ did not install (see above)" >&2; exit 2; }
  export PYTHONPATH=/tmp/gpu-check-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: torch sees no CUDA device (torch.cuda.is_available() is false, or torch is missing): nothing to check here; run it on a machine with a GPU" >&2
  echo '{"cuda": false}' > "$OUT/gpu_check.json"
  exit 3
fi
if ! "$PY" -c "import spacy, thinc" 2>/dev/null; then
  echo "gpu_check: spaCy is not installed here: fetch its wheels with benchmarks/gpu_wheels.sh on a machine with a registry, into .whl/, and bring that folder" >&2
  exit 2
fi
# The package's entry points (spaCy finds the factories of saved pipelines through them).
"$PY" -m pip install -q --no-deps --no-index --no-build-isolation -e . >"$OUT/install.log" 2>&1 \
  || echo "gpu_check: pip install -e . failed (see install.log); going on with PYTHONPATH" >&2

start=$(date +%s)
timeout "$TESTS_S" "$PY" -m pytest tests -m gpu -o addopts="" -q -p no:cacheprovider -rfEs \
  --junitxml="$OUT/gpu_tests.xml" >"$OUT/gpu_tests.log" 2>&1
tests_rc=$?
tail -25 "$OUT/gpu_tests.log"
timeout "$BENCH_S" "$PY" benchmarks/bench_gpu.py --json "$OUT/bench_gpu.json" >"$OUT/bench_gpu.log" 2>&1
bench_rc=$?
tail -60 "$OUT/bench_gpu.log"

"$PY" - "$OUT" "$tests_rc" "$bench_rc" "$start" <<'PYEOF'
import json, sys, time, xml.etree.ElementTree as ET
from pathlib import Path
out, tests_rc, bench_rc, start = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
import torch
summary = {"cuda": True, "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "tests_exit": tests_rc, "bench_exit": bench_rc, "seconds": round(time.time() - start), "tests": None, "failures": []}
for name in ("spacy", "thinc", "transformers"):
    try:
        summary[name] = __import__(name).__version__
    except Exception as err:  # noqa: BLE001
        summary[name] = f"missing ({err})"
xml = out / "gpu_tests.xml"
if xml.is_file():
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    summary["tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    for case in suite.iter("testcase"):
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            summary["failures"].append({"test": f"{case.get('classname')}::{case.get('name')}", "message": (bad.get("message") or "")[:500]})
summary["bench"] = "bench_gpu.json" if (out / "bench_gpu.json").is_file() else None
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2), encoding="utf8")
print(json.dumps({k: v for k, v in summary.items() if k != "failures"}))
PYEOF
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ]
