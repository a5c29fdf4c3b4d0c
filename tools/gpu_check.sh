#!/bin/sh
# The cross-device check for a machine with a GPU: one prepared script.
#
#   tools/gpu_check.sh [OUT_DIR]
#       on the GPU machine, from the repository root: use a pack (gpu-pack/,
#       see below) or an existing build/reformer, else build one with cmake
#       into build-gpu; then `run` it into OUT_DIR (default $OUT, else
#       gpu-check-out).
#   tools/gpu_check.sh pack BUILD_DIR PACK_DIR
#       here: copy BUILD_DIR/reformer (statically linked against our library),
#       every shared library it needs, found with ldd (libclblast, libOpenCL
#       from ocl-icd, libopenblas, libjson-c and what they pull in), except
#       the C library itself, and the benchmark model's config into PACK_DIR,
#       for a GPU machine without our build tools.
#   tools/gpu_check.sh run DIR OUT_DIR
#       DIR holds `reformer` (a pack or a build folder): use its libraries,
#       find NVIDIA's OpenCL library and point a private ICD file at it, then
#       run `reformer devices`, `verify --all --grid full`, `tune` on the GPU
#       and the three benchmarks with --all, each under a timeout, writing
#       every output into OUT_DIR (summary.txt lists each step's status).
#
# Time: the whole run stays within GPU_CHECK_BUDGET seconds (default 840: a
# lent machine allows 15 minutes), each step within STEP_TIMEOUT (default
# 300) and what is left; a step that does not fit is skipped and says so.
# Environment for `run`: NVIDIA_OPENCL_LIB=PATH (skip the search),
# VERIFY_GRID (default full), TUNE_ARGS, ATTENTION_ARGS, GEMM_ARGS, MODEL_ARGS
# (replace the default sizes). Without a GPU it says so and exits 3 after
# listing the devices, unless GPU_CHECK_DEVICE=NAME names another device
# (e.g. pocl) to run every step on instead: how it is tested here.
set -u

usage() {
    echo "usage: $0 [OUT_DIR] | pack BUILD_DIR PACK_DIR | run DIR OUT_DIR" >&2
    exit 2
}

root=$(cd "$(dirname "$0")/.." && pwd)
config=docs/bench/reformer-bench-4096.json

pack() {
    build=$1 dest=$2
    [ -x "$build/reformer" ] || { echo "gpu_check: no executable $build/reformer" >&2; exit 1; }
    mkdir -p "$dest" || exit 1
    cp "$build/reformer" "$dest/" || exit 1
    cp "$root/$config" "$dest/" || exit 1
    # "libx.so.N => /path/libx.so.N (0x...)": copy each by its soname,
    # following links; the C library and the loader come from the target.
    ldd "$build/reformer" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' |
        while read -r name path; do
            case $name in
            libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | ld-linux*) continue ;;
            esac
            cp -L "$path" "$dest/$name" || exit 1
            echo "packed $name ($path)"
        done || exit 1
    echo "gpu_check: $(find "$dest" -type f | wc -l) files in $dest ($(du -sh "$dest" | cut -f1))"
}

# The absolute path of NVIDIA's OpenCL library, or nothing.
find_nvidia() {
    if [ -n "${NVIDIA_OPENCL_LIB:-}" ]; then
        echo "$NVIDIA_OPENCL_LIB"
        return
    fi
    for d in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/nvidia/lib64 /usr/local/nvidia/lib \
        /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu/nvidia/current \
        /usr/lib/nvidia /opt/nvidia/lib64; do
        [ -e "$d/libnvidia-opencl.so.1" ] && { echo "$d/libnvidia-opencl.so.1"; return; }
    done
    p=$(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so\.1/ { print $NF; exit }')
    [ -n "$p" ] && { echo "$p"; return; }
    find /usr /opt -xdev -name 'libnvidia-opencl.so.1' 2>/dev/null | head -n 1
}

run() {
    pack=$(cd "$1" && pwd) || exit 1
    mkdir -p "$2" || exit 1
    out=$(cd "$2" && pwd)
    [ -x "$pack/reformer" ] || { echo "gpu_check: no executable $pack/reformer" >&2; exit 1; }
    export LD_LIBRARY_PATH="$pack${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    tmp=$(mktemp -d) || exit 1
    trap 'rm -rf "$tmp"' EXIT
    export XDG_CACHE_HOME="$tmp/cache" # a fresh kernel cache: builds are part of the check
    nv=$(find_nvidia)
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "host: $(uname -a)"
        if [ -n "$nv" ]; then
            mkdir -p "$tmp/vendors"
            echo "$nv" >"$tmp/vendors/nvidia.icd"
            export OCL_ICD_VENDORS="$tmp/vendors"
            echo "opencl: OCL_ICD_VENDORS=$OCL_ICD_VENDORS with nvidia.icd -> $nv"
        else
            echo "opencl: no libnvidia-opencl.so.1 found; using the machine's ICD files:" \
                "$(find /etc/OpenCL/vendors -name '*.icd' 2>/dev/null | tr '\n' ' ')"
        fi
        command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
        echo "libraries:"
        ldd "$pack/reformer"
    } >"$out/environment.txt" 2>&1
    cat "$out/environment.txt"

    failed=0
    t_end=$(($(date +%s) + ${GPU_CHECK_BUDGET:-840}))
    : >"$out/summary.txt"
    step() { # step NAME COMMAND...: stdout+stderr to NAME.txt, status to the summary
        name=$1
        shift
        start=$(date +%s)
        limit=$((t_end - start))
        [ "$limit" -gt "${STEP_TIMEOUT:-300}" ] && limit=${STEP_TIMEOUT:-300}
        if [ "$limit" -lt 20 ]; then
            echo "$name: skipped: the ${GPU_CHECK_BUDGET:-840} s budget is spent: reformer $*" | tee -a "$out/summary.txt"
            failed=1
            return
        fi
        timeout -k 10 "$limit" "$pack/reformer" "$@" >"$out/$name.txt" 2>&1
        rc=$?
        line="$name: exit $rc in $(($(date +%s) - start)) s$([ $rc -eq 124 ] && echo " (timed out at $limit s)"): reformer $*"
        echo "$line" | tee -a "$out/summary.txt"
        [ $rc -eq 0 ] || failed=1
    }
    step devices devices
    step devices-json devices --json
    # The devices to check: every OpenCL device and the first GPU, or the
    # one GPU_CHECK_DEVICE names.
    if [ -n "${GPU_CHECK_DEVICE:-}" ]; then
        echo "gpu_check: GPU_CHECK_DEVICE=$GPU_CHECK_DEVICE: every step on that device" | tee -a "$out/summary.txt"
        set -- --device "$GPU_CHECK_DEVICE"
        gpu=$GPU_CHECK_DEVICE
    elif grep -q '"type": "gpu"' "$out/devices-json.txt"; then
        set -- --all
        gpu=auto # the first GPU that is not a simulator
    else
        echo "gpu_check: no GPU: OpenCL lists no GPU device (devices.txt); nothing measured." \
            "GPU_CHECK_DEVICE=NAME runs the steps on another device." | tee -a "$out/summary.txt"
        return 3
    fi
    cfg=$pack/$(basename "$config")
    [ -f "$cfg" ] || cfg=$root/$config
    step verify verify "$@" --grid "${VERIFY_GRID:-full}"
    # shellcheck disable=SC2086 # the *_ARGS are word lists on purpose
    step tune tune --device "$gpu" ${TUNE_ARGS:---shapes benchmark --budget 120}
    cp "$XDG_CACHE_HOME"/reformer-cl/tune-*.json "$out/" 2>/dev/null # the table it stored
    # shellcheck disable=SC2086
    step bench-gemm bench gemm "$@" ${GEMM_ARGS:---sizes 512,1024,2048} --csv "$out/gemm.csv" \
        --json "$out/gemm.json" --profile-csv "$out/gemm_profile.csv"
    # shellcheck disable=SC2086
    step bench-attention bench attention "$@" ${ATTENTION_ARGS:---tokens 16384 --lengths 1024,4096,16384} \
        --csv "$out/attention.csv" --json "$out/attention.json" --profile-csv "$out/attention_profile.csv"
    # shellcheck disable=SC2086
    step bench-model bench model --config "$cfg" "$@" ${MODEL_ARGS:-} --csv "$out/model.csv" --json "$out/model.json"
    echo "gpu_check: outputs in $out$([ $failed -eq 0 ] || echo '; some steps FAILED (see summary.txt)')"
    return $failed
}

# No arguments: find or build the tool, then run it.
auto() {
    out=${1:-${OUT:-gpu-check-out}}
    mkdir -p "$out" || exit 1
    for d in "$root/gpu-pack" "$root/build" "$root/build-gpu"; do
        [ -x "$d/reformer" ] && { run "$d" "$out"; exit $?; }
    done
    echo "gpu_check: no gpu-pack/reformer or build/reformer: building into build-gpu (log: $out/build.txt)"
    if ! command -v cmake >/dev/null; then
        echo "gpu_check: cmake is missing: build and 'pack' on another machine, then bring gpu-pack/" | tee "$out/summary.txt"
        exit 1
    fi
    if ! { timeout 600 cmake -S "$root" -B "$root/build-gpu" -DCMAKE_BUILD_TYPE=Release -DRF_BUILD_TESTS=OFF &&
        timeout 600 cmake --build "$root/build-gpu" -j "$(nproc)"; } >"$out/build.txt" 2>&1; then
        echo "gpu_check: the build failed (the last lines of $out/build.txt below); install the packages" \
            "'tools/setup.sh deps' lists, or build and 'pack' elsewhere" | tee "$out/summary.txt"
        tail -n 20 "$out/build.txt"
        exit 1
    fi
    run "$root/build-gpu" "$out"
}

case ${1:-} in
pack) [ $# -eq 3 ] || usage; pack "$2" "$3" ;;
run) [ $# -eq 3 ] || usage; run "$2" "$3" ;;
-h | --help) usage ;;
*) [ $# -le 1 ] || usage; auto "$@" ;;
esac
