/* Tunable kernel parameters (cl_tune.h). Until `reformer tune` stores values
 * for a device, every key reads its documented default. */
#include "device/opencl/cl_tune.h"

const rf_cl_tunable rf_cl_tunables[] = {
    /* local / full attention (local_attention.c): rows a group owns, rows
     * it streams per step, work-items per row */
    {"attn_forward.qtile", 4, {4, 8, 16, 32}},
    {"attn_forward.ktile", 4, {8, 16, 32, 64}},
    {"attn_forward.split", 5, {2, 4, 8, 16, 32}},
    {"attn_backward_dq.qtile", 4, {4, 8, 16, 32}},
    {"attn_backward_dq.ktile", 4, {8, 16, 32, 64}},
    {"attn_backward_dq.split", 5, {2, 4, 8, 16, 32}},
    {"attn_backward_dkdv.ktile", 4, {4, 8, 16, 32}},
    {"attn_backward_dkdv.qtile", 4, {8, 16, 32, 64}},
    {"attn_backward_dkdv.split", 5, {2, 4, 8, 16, 32}},
};
const int rf_cl_ntunables = (int)(sizeof rf_cl_tunables / sizeof *rf_cl_tunables);

int rf_cl_tuned(rf_device *dev, const char *key, int fallback) {
    (void)dev;
    (void)key;
    return fallback;
}
