/* Tunable kernel parameters (cl_tune.h). Until `reformer tune` stores values
 * for a device, every key reads its documented default. */
#include "device/opencl/cl_tune.h"

const rf_cl_tunable rf_cl_tunables[] = {
    {"none", 0, {0}},
};
const int rf_cl_ntunables = 0;

int rf_cl_tuned(rf_device *dev, const char *key, int fallback) {
    (void)dev;
    (void)key;
    return fallback;
}
