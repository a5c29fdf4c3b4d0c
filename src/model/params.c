/* The parameter table seen from outside (names, tensors, gradients), and the
 * training state beside it: a gradient per parameter and AdamW's moments. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "device/device_impl.h"
#include "model/model_impl.h"
#include "ops/ops_impl.h"

int64_t rf_model_steps(const rf_model *model) { return model && model->train ? model->train->steps : 0; }

int rf_model_param_count(const rf_model *model) { return model ? model->nparams : 0; }

const char *rf_model_param_name(const rf_model *model, int index) {
    return model && index >= 0 && index < model->nparams ? model->params[index].name : NULL;
}

static int param_index(const rf_model *m, const char *name) {
    for (int i = 0; name && i < m->nparams; i++)
        if (!strcmp(m->params[i].name, name)) return i;
    return -1;
}

rf_tensor *rf_model_param(rf_model *model, const char *name) {
    int i = model ? param_index(model, name) : -1;
    return i < 0 ? NULL : &model->params[i].t;
}

const rf_tensor *rf_model_grad(const rf_model *model, const char *name) {
    int i = model && model->train ? param_index(model, name) : -1;
    return i < 0 ? NULL : &model->train->grads[i];
}

/* The gradient buffer of a parameter (the table keeps them in step). */
rf_tensor *rf_model_grad_of(rf_model *m, const rf_tensor *p) {
    const param *owner = (const param *)((const char *)p - offsetof(param, t));
    return &m->train->grads[owner - m->params];
}

rf_status rf_train_state_ensure(rf_model *m) {
    if (m->train) return RF_OK;
    m->train = calloc(1, sizeof *m->train);
    if (!m->train) return rf_error(RF_ERR_OUT_OF_MEMORY, "no host memory for the training state");
    rf_status s = RF_OK;
    for (int i = 0; s == RF_OK && i < m->nparams; i++) {
        const rf_tensor *p = &m->params[i].t;
        rf_tensor *all[] = {&m->train->grads[i], &m->train->adam_m[i], &m->train->adam_v[i]};
        for (int k = 0; s == RF_OK && k < 3; k++) {
            s = rf_tensor_alloc(m->dev, all[k], RF_F32, p->ndim, p->shape);
            if (s == RF_OK) s = rf_tensor_fill_f32(all[k], 0.0f);
        }
    }
    if (s != RF_OK) rf_train_state_free(m);
    return s;
}

rf_status rf_model_zero_grad(rf_model *model) {
    if (!model) return rf_error(RF_ERR_INVALID_ARG, "rf_model_zero_grad: model is NULL");
    if (!model->train) return RF_OK;
    for (int i = 0; i < model->nparams; i++) RF_TRY(rf_tensor_fill_f32(&model->train->grads[i], 0.0f));
    return RF_OK;
}

rf_status rf_model_grad_count(const rf_model *model, size_t *count) {
    if (!model || !count) return rf_error(RF_ERR_INVALID_ARG, "rf_model_grad_count: null argument");
    size_t n = 0;
    for (int i = 0; i < model->nparams; i++) n += rf_tensor_numel(&model->params[i].t);
    *count = n;
    return RF_OK;
}

/* Both directions of the fused vector: each tensor's slice in turn. */
static rf_status grads_transfer(rf_model *m, float *host, size_t count, bool upload, const char *op) {
    if (!m || !host) return rf_error(RF_ERR_INVALID_ARG, "%s: null argument", op);
    size_t want;
    RF_TRY(rf_model_grad_count(m, &want));
    if (count != want)
        return rf_error(RF_ERR_INVALID_ARG, "%s: count %zu, but the model has %zu gradient floats", op, count, want);
    RF_TRY(rf_train_state_ensure(m));
    size_t at = 0;
    for (int i = 0; i < m->nparams; i++) {
        rf_tensor *g = &m->train->grads[i];
        size_t n = rf_tensor_numel(g);
        RF_TRY(upload ? rf_tensor_upload(g, host + at, n * sizeof *host) : rf_tensor_download(g, host + at, n * sizeof *host));
        at += n;
    }
    return RF_OK;
}

rf_status rf_model_grads_download(rf_model *model, float *host, size_t count) {
    return grads_transfer(model, host, count, false, "rf_model_grads_download");
}

rf_status rf_model_grads_upload(rf_model *model, const float *host, size_t count) {
    /* The transfer only reads host when uploading. */
    return grads_transfer(model, (float *)host, count, true, "rf_model_grads_upload");
}

uint64_t rf_model_forward_calls(const rf_model *model) { return model ? model->step : 0; }

rf_status rf_model_set_forward_calls(rf_model *model, uint64_t calls) {
    if (!model) return rf_error(RF_ERR_INVALID_ARG, "rf_model_set_forward_calls: model is NULL");
    if (calls > UINT32_MAX)
        return rf_error(RF_ERR_INVALID_ARG, "rf_model_set_forward_calls: %llu exceeds the counter's 32 bits",
                        (unsigned long long)calls);
    model->step = (uint32_t)calls;
    return RF_OK;
}
