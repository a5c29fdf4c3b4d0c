/* Tunable kernel parameters (cl_tune.h). Until `reformer tune` stores values
 * for a device, every key reads its documented default. */
#include "device/opencl/cl_tune.h"

const rf_cl_tunable rf_cl_tunables[] = {
    {"layer_norm.lanes", 7, {1, 2, 4, 8, 16, 32, 64}},
    {"layer_norm.group", 5, {64, 128, 256, 512, 1024}},
    {"cross_entropy.lanes", 7, {1, 2, 4, 8, 16, 32, 64}},
    {"cross_entropy.group", 5, {64, 128, 256, 512, 1024}},
    {"bias_grad.columns", 6, {1, 4, 8, 16, 32, 64}},
    {"bias_grad.group", 5, {64, 128, 256, 512, 1024}},
};
const int rf_cl_ntunables = (int)(sizeof rf_cl_tunables / sizeof rf_cl_tunables[0]);

int rf_cl_tuned(rf_device *dev, const char *key, int fallback) {
    (void)dev;
    (void)key;
    return fallback;
}
