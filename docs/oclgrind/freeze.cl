// oclgrind 21.10 with OCLGRIND_UNINITIALIZED=1 aborts this kernel
// ("OCLGRIND FATAL ERROR ... Unsupported instruction: freeze"): with
// optimisation on, LLVM turns the pair i / n, i % n into a division and
// i − (i / n)·n with `freeze` on i, an instruction the checker does not know.
// The kernel is then not run at all and its output keeps whatever the buffer
// held (NaN sentinels in `reformer verify`). -cl-opt-disable avoids it.
__kernel void div_rem(__global float *out, __global const float *in, const ulong n, const ulong total) {
    size_t i = get_global_id(0);
    if (i >= total) return;
    size_t r = i / n, c = i % n;
    out[i] = in[c * n + r];
}
