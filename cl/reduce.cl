// Reductions shared by the kernels; every item of the group must call
// them, since they contain barriers.
//
// group_sum (loss.cl, optim.cl): over a whole 1-D group, whose size is a
// power of two (rf_cl_group_size), by a fixed tree (deterministic).
// `scratch` holds get_local_size(0) floats.

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

// Row reductions of the 2-D row kernels (norm.cl, loss.cl; the host plans
// them with rf_cl_row_groups): a group holds G rows of W lanes (local id 0,
// W = get_local_size(0), is the lane). Each lane writes its partial to the
// row's W floats of local memory (`part`), one barrier, then every lane
// combines the W partials itself, in lane order: the same order for every
// lane and every group size (deterministic), and no second barrier to hand
// the result out. PoCL runs a group as loops over its items split at
// barriers, so one barrier per reduction keeps it fast; on a GPU the reads
// of `part` are broadcasts. `part` is not reused without a barrier between.
float row_sum(float v, __local float *part, size_t lane, size_t W) {
    part[lane] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    float s = 0.0f;
    for (size_t j = 0; j < W; j++) s += part[j];
    return s;
}

float row_max(float v, __local float *part, size_t lane, size_t W) {
    part[lane] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    float m = part[0];
    for (size_t j = 1; j < W; j++) m = fmax(m, part[j]);
    return m;
}

// The sums of a and of b with one barrier; pa and pb are the row's two
// parts of W floats.
float2 row_sum2(float a, float b, __local float *pa, __local float *pb, size_t lane, size_t W) {
    pa[lane] = a;
    pb[lane] = b;
    barrier(CLK_LOCAL_MEM_FENCE);
    float2 s = 0.0f;
    for (size_t j = 0; j < W; j++) s += (float2)(pa[j], pb[j]);
    return s;
}

// The CPU shape's row kernels (norm.cl, loss.cl *_rows; picked by rf_cl_attn_shape):
// a work-item walks whole rows 8 lanes at a time, so the code PoCL compiles
// is a vector loop, with no barrier. hsum8: the lanes' sum, in a fixed
// pairwise order.
float hsum8(float8 v) {
    const float4 h = v.lo + v.hi;
    const float2 q = h.lo + h.hi;
    return q.x + q.y;
}
