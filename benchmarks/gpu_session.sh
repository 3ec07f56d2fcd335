#!/usr/bin/env bash
# The whole GPU check of the throughput issue, as one prepared script for a lent GPU machine.
#
#   here:        bash benchmarks/gpu_session.sh prepare
#                    downloads the wheels the GPU image lacks (Python 3.12) and exports the benchmark's
#                    data and DeBERTa-v3 tokenizer into .gpu/ (git-excluded), since ../shared does not travel
#   on the GPU:  device run, carry [".gpu"], command: bash benchmarks/gpu_session.sh run
#                    installs the wheels, then runs the Trainer-vs-routertrain throughput benchmark
#                    (at most 320 s), the attention-kernel parity/speed check (at most 140 s) and a
#                    one-process FSDP2 run that must export a loadable router (at most 80 s);
#                    tables and JSON land in $OUT. Give the device call timeout_s 600.
#   test on CPU: SKIP_INSTALL=1 PRESET=cpu-small STEPS=3 OUT=/tmp/gpu-out bash benchmarks/gpu_session.sh run
#
# The results are appended to $OUT/BENCHMARKS.md (copy the tables into BENCHMARKS.md by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}

case "$mode" in
prepare)
    mkdir -p .gpu/whl .git/info
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    # packages missing on the GPU image (see ../.library/device/KINDS.md); pyarrow because datasets needs >=24
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl \
        datasets==5.2.0 pyarrow==26.0.1 dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0 omegaconf==2.4.0 \
        disentangled-flash==1.1.1 flashdeberta==0.0.8
    rm -rf .gpu/bench && "$PY" benchmarks/throughput.py --export .gpu/bench
    tar -C .gpu -czf .gpu/bench.tgz bench && rm -rf .gpu/bench
    du -sh .gpu
    ;;
run)
    OUT=${OUT:?set OUT to a folder for the results}
    PRESET=${PRESET:-gpu-large}
    mkdir -p "$OUT"
    if [ -z "${SKIP_INSTALL:-}" ]; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
    work=$(mktemp -d)
    tar -C "$work" -xzf .gpu/bench.tgz
    data=(--data-disk "$work/bench/data" --tokenizer "$work/bench/tokenizer")
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1 || echo "no nvidia-smi" > "$OUT/gpu.txt"
    "$PY" -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__)" | tee -a "$OUT/gpu.txt"
    # 1. end to end, the table the issue asks for: Trainer vs routertrain (transformers' attention, and
    #    disentangled-flash's Triton kernels); each side at most CHILD_TIMEOUT s, rows saved as they come
    steps=()
    [ -n "${STEPS:-}" ] && steps=(--steps "$STEPS")
    timeout "${THROUGHPUT_TIMEOUT:-320}" "$PY" benchmarks/throughput.py --preset "$PRESET" "${data[@]}" "${steps[@]}" --repeats 1 \
        --kernels hf,disentangled-flash --child-timeout "${CHILD_TIMEOUT:-140}" --output "$OUT/BENCHMARKS.md" --json "$OUT/throughput.json" 2>&1 | tail -n 20 \
        || { echo "throughput run failed or timed out; rows saved before that:" | tee -a "$OUT/BENCHMARKS.md"
             if [ -f "$OUT/throughput.json" ]; then "$PY" benchmarks/throughput.py --table-from "$OUT/throughput.json" --output "$OUT/BENCHMARKS.md" | tail -n 12 || true; fi; }
    # 2. attention kernels: parity with transformers' attention, then forward+backward speed
    #    (hf+compile left out: its DeBERTa-large warm-up alone took ~2 min per precision on an H100)
    timeout "${KERNEL_TIMEOUT:-140}" "$PY" benchmarks/deberta_kernels.py --preset "$PRESET" "${data[@]}" \
        --candidates "${CANDIDATES:-hf,disentangled-flash-torch,disentangled-flash,flashdeberta}" \
        --output "$OUT/BENCHMARKS.md" --json "$OUT/kernels.json" 2>&1 | tail -n 20 || echo "kernel check failed or timed out" | tee -a "$OUT/BENCHMARKS.md"
    # 3. accelerate_configs/fsdp.yaml, one process: sharded checkpointing and router export in bf16 on CUDA (CPU tests cover fp32 over gloo)
    timeout "${FSDP_TIMEOUT:-80}" "$PY" benchmarks/fsdp_check.py --tokenizer "$work/bench/tokenizer" --timeout 65 \
        > "$OUT/fsdp.json" 2> "$OUT/fsdp.log" || echo "FSDP check failed or timed out (see fsdp.json, fsdp.log)" | tee -a "$OUT/BENCHMARKS.md"
    tail -n 1 "$OUT/fsdp.json" || true
    ;;
*)
    echo "usage: bash benchmarks/gpu_session.sh prepare|run" >&2
    exit 2
    ;;
esac
