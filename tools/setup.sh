#!/usr/bin/env bash
# Set up, build, and run reformer-cl on a Debian machine.
#
#   tools/setup.sh run    install what is missing, build, run the main job on the default device
#   tools/setup.sh test   install what is missing, build, run every test (plain, ASan+UBSan, without OpenCL)
#   tools/setup.sh build  install what is missing and build (build/ and build/reformer)
#   tools/setup.sh deps   only install the Debian packages that are missing
#
# As root the missing packages are installed with apt-get; otherwise the
# exact command to run is printed and the script stops.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=$(nproc 2>/dev/null || echo 2)

# Everything the build, the tests and the default device need.
PACKAGES=(cmake gcc make pkg-config ocl-icd-opencl-dev opencl-headers pocl-opencl-icd
          libclblast-dev libcmocka-dev libopenblas-dev libjson-c-dev valgrind oclgrind
          libopenmpi-dev openmpi-bin)

deps() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    if [ "$(id -u)" -eq 0 ]; then
        echo "setup: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "setup: missing Debian packages. Run:"
        echo "  sudo apt-get install -y ${missing[*]}"
        exit 1
    fi
}

# build DIR [extra cmake args...]
build() {
    local dir=$1
    shift
    cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRF_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS"
}

cmd=${1:-run}
case "$cmd" in
deps)
    deps
    ;;
build)
    deps
    build build
    ;;
run)
    deps
    build build
    ./build/reformer devices
    # The paper's duplication task on the default device; ends with the
    # held-out accuracy.
    ./build/reformer train --task copy
    ;;
test)
    deps
    build build
    # RF_TEST_REQUIRE_OPENCL=1: a test that wants an OpenCL device fails when
    # there is none (PoCL is installed above) instead of skipping.
    (cd build && RF_TEST_REQUIRE_OPENCL=1 ctest --output-on-failure -j 2)
    # Portability (docs/portability.md): every kernel planned against each
    # GPU limits profile, on PoCL (the quick grid) and on oclgrind with all
    # its checks on, uninitialised values included (the tiny grid; any
    # report fails; about 20 s a profile).
    for p in amd nvidia intel min; do
        echo "verify --limits $p: pocl, oclgrind"
        ./build/reformer verify --device pocl --limits "$p" >/dev/null
        tools/oclgrind_check.sh build --limits "$p" >/dev/null
    done
    # The chunk attention kernels' CPU shape (what PoCL runs by default;
    # the limits profiles above run the GPU shape) under the same checks.
    echo "oclgrind, CPU-shaped attention kernels"
    RF_CL_ATTN=cpu tools/oclgrind_check.sh build >/dev/null
    # Those kernels at both vector widths (cl/attention_common.cl, VW: 8 on
    # AVX2, 16 on AVX-512), whichever this host's PoCL picks.
    for w in 8 16; do
        echo "verify --device pocl, CPU shape at vector width $w"
        RF_CL_VECTOR_WIDTH=$w ./build/reformer verify --device pocl >/dev/null
    done
    # The same suite under AddressSanitizer + UBSan (+ LeakSanitizer; driver
    # internals are suppressed by tests/lsan.supp, our code is not).
    build build-asan -DRF_SANITIZE=ON
    (cd build-asan && RF_TEST_REQUIRE_OPENCL=1 ctest --output-on-failure -j 2)
    # Without the OpenCL backend (-DRF_OPENCL=OFF): tests/poison puts a
    # CL/cl.h that is an #error first on the include path, so this build
    # proves no cpu file needs an OpenCL header; the OpenCL tests skip.
    build build-nocl -DRF_OPENCL=OFF
    (cd build-nocl && env -u RF_TEST_REQUIRE_OPENCL ctest --output-on-failure -j 2)
    # A cpu-only subset under valgrind memcheck (uninitialised reads, which
    # ASan does not see): OpenCL is hidden behind an empty vendor folder, so
    # the OpenCL tests skip (RF_TEST_REQUIRE_OPENCL unset). Then a short train
    # and resume with the CLI.
    # (test_lsh_attention takes minutes under valgrind: not in the subset.)
    vgtmp=$(mktemp -d)
    mkdir "$vgtmp/no-vendors"
    # vg_exit WANT CMD...: CMD under valgrind memcheck must exit WANT (99: valgrind
    # found errors); vg CMD...: must succeed.
    vg_exit() {
        local want=$1 rc=0
        shift
        env -u RF_TEST_REQUIRE_OPENCL OCL_ICD_VENDORS="$vgtmp/no-vendors" RF_TEST_DATA="$ROOT/tests/data" \
            OMP_WAIT_POLICY=passive RF_CLI="$ROOT/build/reformer" valgrind -q --error-exitcode=99 --leak-check=full \
            --suppressions="$ROOT/tests/valgrind.supp" "$@" >"$vgtmp/log" 2>&1 || rc=$?
        [ "$rc" = "$want" ] || { cat "$vgtmp/log"; echo "setup: valgrind: exit $rc, expected $want: $*"; exit 1; }
    }
    vg() { vg_exit 0 "$@"; }
    for t in test_harness test_safetensors test_config test_no_opencl test_device test_op_table test_tensor \
             test_elementwise test_gemm test_linear test_norm test_activation test_embedding test_loss test_optim \
             test_dropout test_philox test_thread_pool test_full_attention test_model test_train test_robustness test_hardening \
             test_cli_numbers test_decode; do
        echo "valgrind: $t"
        vg "./build/$t"
    done
    small=(--task copy --device cpu --batch 2 --length 32)
    echo "valgrind: reformer train, then --resume"
    vg ./build/reformer train "${small[@]}" --steps 3 --hidden 16 --heads 2 --chunk 8 --out "$vgtmp/ckpt"
    vg ./build/reformer train "${small[@]}" --steps 5 --resume "$vgtmp/ckpt"
    # Refusals and the run folder as a model, under valgrind too (error paths
    # read uninitialised memory where tests rarely look).
    echo "valgrind: reformer refusals (issue 14)"
    mkfifo "$vgtmp/fifo"
    vg_exit 2 ./build/reformer train "${small[@]}" --steps 1 --out ""
    vg_exit 2 ./build/reformer train "${small[@]}" --steps 9 --out "$vgtmp/ckpt"
    vg_exit 1 ./build/reformer train "${small[@]}" --steps 5 --resume "$vgtmp/ckpt"
    vg_exit 1 ./build/reformer train --text "$vgtmp/fifo" --device cpu
    vg_exit 2 ./build/reformer sample --random --length 9223372036854775807
    vg_exit 0 ./build/reformer eval --model "$vgtmp/ckpt" --text "$vgtmp/ckpt/latest" --device cpu
    vg_exit 0 ./build/reformer sample --model "$vgtmp/ckpt/latest" --length 2 --device cpu
    rm -rf "$vgtmp"
    ;;
*)
    sed -n '2,11p' "$0"
    exit 2
    ;;
esac
