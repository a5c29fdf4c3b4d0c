#!/bin/sh
# Register report of an OpenCL kernel file for an AMD GPU, without one:
# clang-14 compiles it for amdgcn (gfx90a) and prints each kernel's VGPRs,
# spilled VGPRs and scratch bytes per work-item (docs/portability.md).
#
#   tools/cl_regs.sh FILE.cl -DHEAD_DIM=64 -DMAX_HEAD_DIM=128 ...   (the kernel's build options)
#
# No ROCm device library is installed, so a shim maps the OpenCL builtins the
# attention kernels use onto clang builtins: left as calls, they would make
# the compiler reserve a call stack and the counts meaningless. A kernel that
# still calls something prints a nonzero `calls`.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 FILE.cl [-DNAME=VALUE]..." >&2; exit 2; }
file=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/shim.h" <<'SHIM'
#define exp(x) __builtin_expf(x)
#define log(x) __builtin_logf(x)
#define fmax(a, b) __builtin_fmaxf(a, b)
#define rsqrt(x) (1.0f / __builtin_sqrtf(x))
#define min(a, b) ((a) < (b) ? (a) : (b))
#define get_local_id(d) ((size_t)__builtin_amdgcn_workitem_id_x())
#define get_local_size(d) ((size_t)__builtin_amdgcn_workgroup_size_x())
#define get_group_id(d) ((size_t)__builtin_amdgcn_workgroup_id_x())
#define get_global_id(d) ((size_t)__builtin_amdgcn_workgroup_id_y())
#define barrier(f) __builtin_amdgcn_s_barrier()
#define mul_hi(a, b) ((uint)(((ulong)(a) * (ulong)(b)) >> 32))
#define vload8(o, p) ((float8)((p)[0], (p)[1], (p)[2], (p)[3], (p)[4], (p)[5], (p)[6], (p)[7]))
SHIM
clang-14 -cl-std=CL1.2 -target amdgcn-amd-amdhsa -mcpu=gfx90a -nogpulib -O2 -Xclang -finclude-default-header \
    -include "$tmp/shim.h" -I"$(dirname "$file")" "$@" -S -o "$tmp/out.s" "$file"
echo "calls: $(grep -c s_swappc "$tmp/out.s" || true)"
grep -E '^\s+\.(name|vgpr_count|private_segment_fixed_size|vgpr_spill_count):' "$tmp/out.s" |
    awk '/\.name:/ {printf "\n%-24s", $2} !/\.name:/ {sub(/^\./, "", $1); printf " %s %s", $1, $2} END {print ""}'
