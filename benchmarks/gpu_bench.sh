#!/usr/bin/env bash
# The paper-scale benchmark and the GPU tests on one GPU machine, in commands that each end
# well inside ten minutes. The machine needs python3 with torch, torchvision, numpy, pandas,
# pyyaml, tqdm, pillow and scikit-learn; what else lf2 imports travels as wheels in .whl/.
#
#   bash benchmarks/gpu_bench.sh wheels    # where pip can reach PyPI: fetch the wheels into .whl/
#   bash benchmarks/gpu_bench.sh tests     # on the GPU: the CUDA tests (sync-free steps, cache, k-means, ranking)
#   bash benchmarks/gpu_bench.sh bench     # on the GPU: every section, faiss CPU/GPU and torch k-means
#   bash benchmarks/gpu_bench.sh sklearn   # on the GPU machine: the scikit-learn k-means comparison
#
# Results go to $OUT (or results/bench-gpu): bench.json, bench.md and a log per command.
# Extra arguments after `bench` or `sklearn` go to `lf2 bench`; DEVICE (default cuda) picks
# the device, e.g. `DEVICE=cpu bash benchmarks/gpu_bench.sh bench --only eval` to try it out.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT:-results/bench-gpu}
DEVICE=${DEVICE:-cuda}
WHEELS=(faiss-cpu==1.13.2 jsonschema==4.25.1 jsonschema-specifications==2025.9.1
        referencing==0.37.0 rpds-py==0.30.0)

use_wheels() {
    # only where python3 lacks them (the wheels are built for the GPU image's Python 3.12)
    if ! python3 -c "import faiss, jsonschema" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/lf2-site .whl/*.whl
        export PYTHONPATH=/tmp/lf2-site:${PYTHONPATH:-}
    fi
    export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
    mkdir -p "$OUT_DIR"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
}

case "${1:-}" in
wheels)
    mkdir -p .whl
    for w in "${WHEELS[@]}"; do
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$w"
    done
    ls -l .whl ;;
tests)
    use_wheels
    python3 -m pytest -q -p no:cacheprovider tests/test_host_sync.py tests/test_batch_transforms.py \
        tests/test_tensor_cache.py tests/test_kmeans_torch.py tests/test_ranking.py 2>&1 \
        | tee "$OUT_DIR/tests.log" ;;
bench)
    use_wheels
    python3 -m lf2 bench --params params/paper.yaml --out "$OUT_DIR" --scale market --device "$DEVICE" \
        --kmeans-methods faiss_cpu,faiss_gpu,torch "${@:2}" 2>&1 | tee "$OUT_DIR/bench.log" ;;
sklearn)
    use_wheels
    python3 -m lf2 bench --params params/paper.yaml --out "$OUT_DIR/sklearn" --scale market \
        --device "$DEVICE" --only kmeans --kmeans-dims 2048,6144 --kmeans-ks 500,900 \
        --kmeans-methods faiss_cpu,torch,sklearn,sklearn_minibatch "${@:2}" 2>&1 | tee "$OUT_DIR/sklearn.log" ;;
*)
    sed -n '2,14p' "$0"; exit 2 ;;
esac
