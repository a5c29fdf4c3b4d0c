#!/usr/bin/env bash
# `reformer verify --grid tiny` on oclgrind (a second OpenCL implementation,
# a simulator that checks every memory access) with all its checks on; any
# report fails the run. Usage: tools/oclgrind_check.sh BUILD_DIR [verify args]
# oclgrind is found through a private ICD vendors folder (never the system
# one, so other programs keep their device order). Artefacts of the
# simulator and how they are avoided: docs/oclgrind.md.
set -euo pipefail
build=${1:?usage: tools/oclgrind_check.sh BUILD_DIR [verify args]}
shift
icd=
for f in /usr/lib/oclgrind/liboclgrind-rt-icd.so /usr/lib/*/liboclgrind-rt-icd.so /usr/local/lib/liboclgrind-rt-icd.so; do
    [ -f "$f" ] && icd=$f && break
done
if [ -z "$icd" ]; then
    echo "oclgrind_check: oclgrind's ICD library (liboclgrind-rt-icd.so) is not installed: skipped" >&2
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/vendors" "$work/cache"
echo "$icd" > "$work/vendors/oclgrind.icd"
export OCL_ICD_VENDORS="$work/vendors"
# Checks: API errors, data races and uninitialised values; out-of-bounds
# accesses and barrier divergence are always on. Any report fails the run.
export OCLGRIND_CHECK_API=1 OCLGRIND_DATA_RACES=1
# RF_OCLGRIND_UNINITIALIZED=0 leaves the uninitialised-value checker out and
# so runs the kernels as compiled for a device (optimised), the others' checks
# only; CI runs both.
if [ "${RF_OCLGRIND_UNINITIALIZED:-1}" = 1 ]; then
    export OCLGRIND_UNINITIALIZED=1
    # Optimised code holds LLVM `freeze`, which that checker aborts on
    # (docs/oclgrind.md, artefact 1).
    export OCLGRIND_BUILD_OPTIONS=-cl-opt-disable
fi
# Programs built under oclgrind's options must not come from (or go to) the
# user's kernel cache.
export XDG_CACHE_HOME="$work/cache"
export OCLGRIND_LOG="$work/oclgrind.log"
status=0
"$build/reformer" verify --device oclgrind --grid tiny "$@" || status=$?
# oclgrind logs each report as a paragraph that names the kernel.
if [ -s "$OCLGRIND_LOG" ]; then
    n=$(grep -c 'Kernel:' "$OCLGRIND_LOG" || true)
    echo "oclgrind_check: oclgrind reported $n problems (first ones below; all in $OCLGRIND_LOG):" >&2
    sed -n 1,120p "$OCLGRIND_LOG" >&2
    status=1
fi
exit $status
