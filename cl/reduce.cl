// Work-group reductions shared by the row kernels (norm.cl, loss.cl,
// optim.cl). The group size is a power of two (the host picks it with
// rf_cl_group_size); every item of the group must call these, since they
// contain barriers. A fixed tree order makes results independent of
// scheduling (deterministic). `scratch` holds get_local_size(0) floats.

float group_sum(float v, __local float *scratch) {
    size_t l = get_local_id(0);
    scratch[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (size_t h = get_local_size(0) / 2; h > 0; h >>= 1) {
        if (l < h) scratch[l] += scratch[l + h];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE); // scratch is reused by the next call
    return r;
}

float group_max(float v, __local float *scratch) {
    size_t l = get_local_id(0);
    scratch[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (size_t h = get_local_size(0) / 2; h > 0; h >>= 1) {
        if (l < h) scratch[l] = fmax(scratch[l], scratch[l + h]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}
