/* Tunable kernel parameters (cl_tune.h). Until `reformer tune` stores values
 * for a device, every key reads its documented default. */
#include "device/opencl/cl_tune.h"

const rf_cl_tunable rf_cl_tunables[] = {
    /* LSH chunk attention (lsh_attention.c, tiles_of): queries per tile,
     * keys per tile, work-items per row (the head dimension split). */
    {"lsh_attend.qtile", 4, {8, 16, 32, 64}},
    {"lsh_attend.ktile", 5, {8, 16, 32, 64, 128}},
    {"lsh_attend.split", 5, {1, 2, 4, 8, 16}},
    {"lsh_backward_query.qtile", 4, {8, 16, 32, 64}},
    {"lsh_backward_query.ktile", 5, {8, 16, 32, 64, 128}},
    {"lsh_backward_query.split", 5, {1, 2, 4, 8, 16}},
    {"lsh_backward_key.qtile", 5, {8, 16, 32, 64, 128}},
    {"lsh_backward_key.ktile", 4, {8, 16, 32, 64}},
    {"lsh_backward_key.split", 5, {1, 2, 4, 8, 16}},
};
const int rf_cl_ntunables = (int)(sizeof rf_cl_tunables / sizeof rf_cl_tunables[0]);

int rf_cl_tuned(rf_device *dev, const char *key, int fallback) {
    (void)dev;
    (void)key;
    return fallback;
}
