/* The optimiser on OpenCL (cl/optim.cl): an elementwise AdamW step, and a
 * one-work-group sum of squares (called once per parameter tensor per step,
 * where determinism matters more than spreading over compute units). */
#include "device/opencl/cl_backend.h"

static rf_status rf_cl_adam_update(rf_tensor *param, rf_tensor *m, rf_tensor *v, const rf_tensor *grad,
                                   const rf_adam_config *cfg, float bc1, float bc2) {
    rf_device *dev = param->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "optim.cl", "", "adam_update", &k));
    size_t local;
    RF_TRY(rf_cl_group_size(dev, k, RF_CL_GROUP, &local));
    cl_ulong po = param->offset, mo = m->offset, vo = v->offset, go = grad->offset, n = rf_tensor_numel(param);
    size_t global = (size_t)n;
    return RF_CL_LAUNCH(dev, k, "adam", 1, &global, &local, RF_MEM(param), RF_ARG(po), RF_MEM(m),
                        RF_ARG(mo), RF_MEM(v), RF_ARG(vo), RF_MEM(grad), RF_ARG(go), RF_ARG(n),
                        RF_ARG(cfg->lr), RF_ARG(cfg->beta1), RF_ARG(cfg->beta2), RF_ARG(cfg->eps),
                        RF_ARG(cfg->weight_decay), RF_ARG(cfg->grad_scale), RF_ARG(bc1), RF_ARG(bc2));
}

static rf_status rf_cl_sum_squares(rf_tensor *out, const rf_tensor *x) {
    rf_device *dev = out->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "optim.cl", "", "sum_squares", &k));
    size_t local;
    RF_TRY(rf_cl_group_size(dev, k, RF_CL_GROUP, &local));
    cl_ulong oo = out->offset, xo = x->offset, n = rf_tensor_numel(x);
    size_t global = local;
    return RF_CL_LAUNCH(dev, k, "sum_squares", 1, &global, &local, RF_MEM(out), RF_ARG(oo),
                        RF_MEM(x), RF_ARG(xo), RF_ARG(n), RF_LOCAL(local * sizeof(float)));
}

void rf_cl_optim_register(rf_op_table *ops) {
    ops->adam_update = rf_cl_adam_update;
    ops->sum_squares = rf_cl_sum_squares;
}
