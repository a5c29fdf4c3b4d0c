/* Non-finite weights and optimiser moments are found before they are saved
 * or used: after every optimiser step of `reformer train`, before every
 * checkpoint is written, and when a model or checkpoint is loaded
 * (docs/robustness.md, "Non-finite numbers"). */
#include <math.h>
#include <stdlib.h>
#include "core/core.h"
#include "model/model_impl.h"

#define CHUNK ((size_t)1 << 18) /* elements downloaded at a time */

/* The first non-finite element of an f32 tensor, by flat index. */
static rf_status check_tensor(const rf_tensor *t, const char *what, const char *name, const char *suffix,
                              const char *where, float *host) {
    if (!t->buf || t->dtype != RF_F32) return RF_OK;
    size_t n = rf_tensor_numel(t);
    for (size_t at = 0; at < n; at += CHUNK) {
        size_t k = n - at < CHUNK ? n - at : CHUNK;
        RF_TRY(rf_buffer_download(t->buf, (t->offset + at) * sizeof(float), host, k * sizeof(float)));
        for (size_t i = 0; i < k; i++)
            if (!isfinite(host[i]))
                return rf_error(RF_ERR_NUMERIC, "%s: %s '%s%s' has a non-finite value (%s) at index %zu", where, what,
                                name, suffix, isnan(host[i]) ? "nan" : host[i] > 0 ? "inf" : "-inf", at + i);
    }
    return RF_OK;
}

rf_status rf_model_check_finite_at(const rf_model *m, const char *where) {
    float *host = malloc(CHUNK * sizeof *host);
    if (!host) return rf_error(RF_ERR_OUT_OF_MEMORY, "%s: no host memory to check the weights", where);
    rf_status s = RF_OK;
    for (int i = 0; s == RF_OK && i < m->nparams; i++)
        s = check_tensor(&m->params[i].t, "weight", m->params[i].name, "", where, host);
    for (int i = 0; s == RF_OK && m->train && i < m->nparams; i++) {
        s = check_tensor(&m->train->adam_m[i], "optimiser moment", m->params[i].name, ".exp_avg", where, host);
        if (s == RF_OK)
            s = check_tensor(&m->train->adam_v[i], "optimiser moment", m->params[i].name, ".exp_avg_sq", where, host);
    }
    free(host);
    return s;
}

rf_status rf_model_check_finite(const rf_model *model) {
    if (!model) return rf_error(RF_ERR_INVALID_ARG, "rf_model_check_finite: model is NULL");
    return rf_model_check_finite_at(model, "model");
}
