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
