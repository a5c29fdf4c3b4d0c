#!/bin/sh
# Cross-device check on a machine with a GPU but without our build tools.
#
#   tools/gpu_check.sh pack BUILD_DIR PACK_DIR
#       here: copy BUILD_DIR/reformer (statically linked against our library)
#       and every shared library it needs, found with ldd (libclblast,
#       libOpenCL from ocl-icd, libopenblas, libjson-c and what they pull
#       in), except the C library itself, into PACK_DIR.
#   tools/gpu_check.sh run PACK_DIR OUT_DIR
#       on the GPU machine: use PACK_DIR's libraries, find NVIDIA's OpenCL
#       library and point a private ICD file at it, then run `reformer
#       devices`, `verify --all --grid quick` and the benchmarks, writing
#       every output into OUT_DIR (summary.txt lists each step's status).
#
# Environment for `run`: NVIDIA_OPENCL_LIB=PATH (skip the search),
# STEP_TIMEOUT (seconds per step, default 300), ATTENTION_ARGS / GEMM_ARGS /
# MODEL_ARGS (replace the benchmarks' default sizes). Without an NVIDIA
# library it says so and uses the machine's own ICD files (e.g. PoCL), which
# is how it is tested on a machine without a GPU.
set -u

usage() {
    echo "usage: $0 pack BUILD_DIR PACK_DIR | run PACK_DIR OUT_DIR" >&2
    exit 2
}

pack() {
    build=$1 dest=$2
    [ -x "$build/reformer" ] || { echo "gpu_check: no executable $build/reformer" >&2; exit 1; }
    mkdir -p "$dest" || exit 1
    cp "$build/reformer" "$dest/" || exit 1
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
    : >"$out/summary.txt"
    step() { # step NAME COMMAND...: stdout+stderr to NAME.txt, status to the summary
        name=$1
        shift
        start=$(date +%s)
        timeout "${STEP_TIMEOUT:-300}" "$pack/reformer" "$@" >"$out/$name.txt" 2>&1
        rc=$?
        line="$name: exit $rc in $(($(date +%s) - start)) s: reformer $*"
        echo "$line" | tee -a "$out/summary.txt"
        [ $rc -eq 0 ] || failed=1
    }
    step devices devices
    step devices-json devices --json
    step verify verify --all --grid quick
    # shellcheck disable=SC2086 # the *_ARGS are word lists on purpose
    step bench-gemm bench gemm --all ${GEMM_ARGS:---sizes 512,1024,2048} --csv "$out/gemm.csv" \
        --json "$out/gemm.json" --profile-csv "$out/gemm_profile.csv"
    # shellcheck disable=SC2086
    step bench-attention bench attention --all ${ATTENTION_ARGS:---tokens 16384 --lengths 1024,2048,4096,8192,16384} \
        --csv "$out/attention.csv" --json "$out/attention.json" --profile-csv "$out/attention_profile.csv"
    # shellcheck disable=SC2086
    step bench-model bench model --all ${MODEL_ARGS:---length 4096 --layers 2,6,12} --csv "$out/model.csv" \
        --json "$out/model.json" --profile-csv "$out/model_profile.csv"
    echo "gpu_check: outputs in $out$([ $failed -eq 0 ] || echo '; some steps FAILED (see summary.txt)')"
    return $failed
}

[ $# -eq 3 ] || usage
case $1 in
pack) pack "$2" "$3" ;;
run) run "$2" "$3" ;;
*) usage ;;
esac
