#!/bin/sh
# Build and run the libFuzzer targets of the file readers (§11: readers
# must refuse any malformed input without crashing):
#   fuzz_safetensors  rf_safetensors_open_memory, then write back and reopen
#   fuzz_config       rf_config_parse_json, then save and reparse
#   fuzz_cli          the `reformer` command line in-process (cli_main) over
#                     argument vectors of every subcommand, with the model
#                     folders of tests/data (see tests/fuzz/fuzz_cli.c)
# Not part of the CMake build: the targets are compiled here with clang
# -fsanitize=fuzzer,address,undefined straight from the (device-free) sources
# they need; fuzz_cli links the whole library, built first with clang and
# -fsanitize=fuzzer-no-link,address,undefined in RF_FUZZ_DIR/lib.
#
# usage: tools/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s each; safetensors config)
# env:   CC (default clang), RF_FUZZ_DIR (default build-fuzz), RF_FUZZ_JOBS
# Seeds: tests/fuzz/corpus_<name>/ (read only; new inputs go to the build
# folder). A crash leaves its input as RF_FUZZ_DIR/crash-*; replay it with
#   build-fuzz/fuzz_<name> build-fuzz/crash-...
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"safetensors config"}
CC=${CC:-clang}
out=${RF_FUZZ_DIR:-$root/build-fuzz}
mkdir -p "$out"

# libFuzzer ships with clang's compiler-rt; Debian splits it into a package.
probe() {
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
        > "$out/probe.c"
    "$CC" -fsanitize=fuzzer "$out/probe.c" -o "$out/probe" >/dev/null 2>&1
}
if ! probe; then
    ver=$("$CC" -dumpversion | cut -d. -f1)
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "fuzz.sh: installing libFuzzer for clang $ver" >&2
        apt-get install -y "libclang-rt-$ver-dev" >/dev/null 2>&1 ||
            apt-get install -y "libclang-common-$ver-dev" >/dev/null 2>&1 || true
    fi
    probe || { echo "fuzz.sh: $CC cannot link -fsanitize=fuzzer (install libclang-rt-$ver-dev)" >&2; exit 1; }
fi
rm -f "$out/probe" "$out/probe.c"

jsonc_cflags=$(pkg-config --cflags json-c 2>/dev/null || echo "-I/usr/include/json-c")
jsonc_libs=$(pkg-config --libs json-c 2>/dev/null || echo "-ljson-c")
flags="-g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -fno-omit-frame-pointer
       -I$root/include -I$root/src $jsonc_cflags"
common="$root/src/core/status.c $root/src/core/log.c $root/src/core/util.c $root/src/io/io_util.c"

# The whole library and the tool's sources, for fuzz_cli.
build_cli() {
    san="-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
    cmake -S "$root" -B "$out/lib" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Debug -DRF_BUILD_TESTS=OFF \
        -DCMAKE_C_FLAGS="$san" >/dev/null
    cmake --build "$out/lib" --target reformer_static -j "${RF_FUZZ_BUILD_JOBS:-2}" >/dev/null
    tools=$(ls "$root"/tools/*.c)
    # shellcheck disable=SC2086  # flag lists split on purpose
    "$CC" $flags -DRF_CLI_NO_MAIN -DCL_TARGET_OPENCL_VERSION=120 -I"$root/tools" "$root/tests/fuzz/fuzz_cli.c" $tools "$out/lib/libreformer.a" \
        -lclblast -lopenblas -lOpenCL $jsonc_libs -lpthread -lm -o "$out/fuzz_cli"
}

for t in $targets; do
    bin="$out/fuzz_$t"
    extra=""
    case $t in
        safetensors) srcs="$root/src/io/safetensors_read.c $root/src/io/safetensors_write.c $root/src/io/json_emit.c" ;;
        config) srcs="$root/src/io/config_json.c $root/src/model/config.c $root/src/ops/lsh_buckets.c" ;;
        cli) srcs="" ;;
        *) echo "fuzz.sh: unknown target '$t' (safetensors, config, cli)" >&2; exit 2 ;;
    esac
    if [ "$t" = cli ]; then
        build_cli
        # stdout and stderr of the commands closed (crash reports still show);
        # the commands' files go to a scratch folder the target makes.
        # Inputs over 4 KiB are skipped by the target: do not make them.
        extra="-close_fd_mask=3 -max_len=4096"
        export RF_TEST_DATA="$root/tests/data"
    else
        # shellcheck disable=SC2086  # flag lists split on purpose
        "$CC" $flags "$root/tests/fuzz/fuzz_$t.c" $common $srcs $jsonc_libs -lm -o "$bin"
    fi
    mkdir -p "$out/corpus_$t"
    echo "fuzz.sh: running fuzz_$t for $secs s" >&2
    # shellcheck disable=SC2086
    (cd "$out" && "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 $extra \
        -dict="$root/tests/fuzz/$t.dict" -print_final_stats=1 ${RF_FUZZ_JOBS:+-jobs=$RF_FUZZ_JOBS} \
        "$out/corpus_$t" "$root/tests/fuzz/corpus_$t")
done
