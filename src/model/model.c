/* The Reformer language model: parameters under their HF names, creation,
 * loading and saving, and the inference forward pass (§8, §9, §11, §12;
 * docs/hf-compat.md for the HF details it reproduces). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "core/philox.h"
#include "device/device_impl.h"
#include "ops/ops_impl.h"
#include "reformer/io.h"
#include "reformer/model.h"
#include "model/model_impl.h"

const rf_config *rf_model_config(const rf_model *model) { return model ? &model->cfg : NULL; }
rf_device *rf_model_device(const rf_model *model) { return model ? model->dev : NULL; }

/* ---- the parameter table ----------------------------------------------------- */

static rf_tensor *add_param(rf_model *m, init_kind init, int ndim, const int64_t *shape, const char *fmt, ...)
    RF_PRINTF(5, 6);

static rf_tensor *add_param(rf_model *m, init_kind init, int ndim, const int64_t *shape, const char *fmt, ...) {
    param *p = &m->params[m->nparams++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->init = init;
    p->t.ndim = ndim;
    for (int i = 0; i < ndim; i++) p->t.shape[i] = shape[i];
    return &p->t;
}
#define SHAPE(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

/* Declare every parameter with its HF name and shape (not yet allocated). */
static void declare(rf_model *m) {
    const rf_config *c = &m->cfg;
    int64_t D = c->hidden_size, HD = (int64_t)c->num_attention_heads * c->attention_head_size;
    int64_t F = c->feed_forward_size, V = c->vocab_size;
    m->word = add_param(m, INIT_NORMAL, SHAPE(V, D), "reformer.embeddings.word_embeddings.weight");
    if (c->axial_pos_embds) {
        m->pos0 = add_param(m, INIT_AXIAL, SHAPE(c->axial_pos_shape[0], 1, c->axial_pos_embds_dim[0]),
                            "reformer.embeddings.position_embeddings.weights.0");
        m->pos1 = add_param(m, INIT_AXIAL, SHAPE(1, c->axial_pos_shape[1], c->axial_pos_embds_dim[1]),
                            "reformer.embeddings.position_embeddings.weights.1");
    } else {
        m->pos = add_param(m, INIT_NORMAL, SHAPE(c->max_position_embeddings, D),
                           "reformer.embeddings.position_embeddings.embedding.weight");
    }
    for (int i = 0; i < c->num_layers; i++) {
        layer *l = &m->layers[i];
        const char *pre = "reformer.encoder.layers";
        l->type = c->attn_layers[i];
        l->ln_a_w = add_param(m, INIT_ONES, SHAPE(D), "%s.%d.attention.layer_norm.weight", pre, i);
        l->ln_a_b = add_param(m, INIT_ZEROS, SHAPE(D), "%s.%d.attention.layer_norm.bias", pre, i);
        if (l->type == RF_ATTN_LSH) {
            l->qk = add_param(m, INIT_NORMAL, SHAPE(HD, D), "%s.%d.attention.self_attention.query_key.weight", pre, i);
        } else {
            l->q = add_param(m, INIT_NORMAL, SHAPE(HD, D), "%s.%d.attention.self_attention.query.weight", pre, i);
            l->k = add_param(m, INIT_NORMAL, SHAPE(HD, D), "%s.%d.attention.self_attention.key.weight", pre, i);
        }
        l->v = add_param(m, INIT_NORMAL, SHAPE(HD, D), "%s.%d.attention.self_attention.value.weight", pre, i);
        l->o = add_param(m, INIT_NORMAL, SHAPE(D, HD), "%s.%d.attention.output.dense.weight", pre, i);
        l->ln_f_w = add_param(m, INIT_ONES, SHAPE(D), "%s.%d.feed_forward.layer_norm.weight", pre, i);
        l->ln_f_b = add_param(m, INIT_ZEROS, SHAPE(D), "%s.%d.feed_forward.layer_norm.bias", pre, i);
        l->w1 = add_param(m, INIT_NORMAL, SHAPE(F, D), "%s.%d.feed_forward.dense.dense.weight", pre, i);
        l->b1 = add_param(m, INIT_ZEROS, SHAPE(F), "%s.%d.feed_forward.dense.dense.bias", pre, i);
        l->w2 = add_param(m, INIT_NORMAL, SHAPE(D, F), "%s.%d.feed_forward.output.dense.weight", pre, i);
        l->b2 = add_param(m, INIT_ZEROS, SHAPE(D), "%s.%d.feed_forward.output.dense.bias", pre, i);
    }
    m->ln_w = add_param(m, INIT_ONES, SHAPE(2 * D), "reformer.encoder.layer_norm.weight");
    m->ln_b = add_param(m, INIT_ZEROS, SHAPE(2 * D), "reformer.encoder.layer_norm.bias");
    m->head_w = add_param(m, INIT_NORMAL, SHAPE(V, 2 * D), "lm_head.decoder.weight");
    m->head_b = add_param(m, INIT_ZEROS, SHAPE(V), "lm_head.decoder.bias");
}

/* Allocate every declared parameter on the device, and the 2-D axial views. */
static rf_status allocate(rf_model *m) {
    for (int i = 0; i < m->nparams; i++) {
        rf_tensor *t = &m->params[i].t;
        int64_t shape[RF_MAX_DIMS];
        int ndim = t->ndim;
        memcpy(shape, t->shape, sizeof shape);
        RF_TRY(rf_tensor_alloc(m->dev, t, RF_F32, ndim, shape));
    }
    if (m->pos0) {
        const rf_config *c = &m->cfg;
        RF_TRY(rf_tensor_view(&m->pos0_2d, m->pos0->buf, 0, RF_F32, 2,
                              (int64_t[]){c->axial_pos_shape[0], c->axial_pos_embds_dim[0]}));
        RF_TRY(rf_tensor_view(&m->pos1_2d, m->pos1->buf, 0, RF_F32, 2,
                              (int64_t[]){c->axial_pos_shape[1], c->axial_pos_embds_dim[1]}));
    }
    return RF_OK;
}

static rf_status model_new(rf_model **out, rf_device *dev, const rf_config *cfg) {
    if (!out || !dev || !cfg) return rf_error(RF_ERR_INVALID_ARG, "rf_model: null argument");
    *out = NULL;
    RF_TRY(rf_config_validate(cfg));
    rf_model *m = calloc(1, sizeof *m);
    if (!m) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_model: no host memory for the model");
    m->cfg = *cfg;
    m->dev = dev;
    declare(m);
    rf_status s = allocate(m);
    if (s == RF_OK) *out = m;
    else rf_model_free(m);
    return s;
}

void rf_train_state_free(rf_model *m) {
    rf_train_state *ts = m->train;
    if (!ts) return;
    for (int i = 0; i < m->nparams; i++) {
        rf_tensor *all[] = {&ts->grads[i], &ts->adam_m[i], &ts->adam_v[i]};
        for (int k = 0; k < 3; k++)
            if (all[k]->buf) rf_tensor_free(all[k]);
    }
    free(ts);
    m->train = NULL;
}

void rf_model_free(rf_model *model) {
    if (!model) return;
    rf_train_state_free(model);
    for (int i = 0; i < model->nparams; i++)
        if (model->params[i].t.buf) rf_tensor_free(&model->params[i].t);
    for (int i = 0; i < model->cfg.num_layers; i++) free(model->layers[i].rotations);
    free(model);
}

rf_status rf_model_create(rf_model **model, rf_device *dev, const rf_config *cfg, uint64_t seed) {
    RF_TRY(model_new(model, dev, cfg));
    rf_model *m = *model;
    m->seed = seed;
    rf_status s = RF_OK;
    for (int i = 0; i < m->nparams && s == RF_OK; i++) {
        param *p = &m->params[i];
        size_t n = rf_tensor_numel(&p->t);
        float *host = malloc(n * sizeof *host);
        if (!host) {
            s = rf_error(RF_ERR_OUT_OF_MEMORY, "rf_model_create: no host memory for %s", p->name);
            break;
        }
        if (p->init == INIT_NORMAL || p->init == INIT_AXIAL) {
            double std = p->init == INIT_AXIAL ? m->cfg.axial_norm_std : m->cfg.initializer_range;
            /* §2: initialisation normals from Philox, one stream per parameter. */
            rf_philox_normals(host, n, seed, rf_philox_stream((uint32_t)i, RF_PHILOX_INIT), 0);
            for (size_t j = 0; j < n; j++) host[j] = (float)(host[j] * std);
        } else {
            for (size_t j = 0; j < n; j++) host[j] = p->init == INIT_ONES ? 1.0f : 0.0f;
        }
        s = rf_tensor_upload(&p->t, host, n * sizeof *host);
        free(host);
    }
    if (s != RF_OK) {
        rf_model_free(m);
        *model = NULL;
    }
    return s;
}

static void join(char *out, size_t n, const char *dir, const char *file) { snprintf(out, n, "%s/%s", dir, file); }

rf_status rf_model_load(rf_model **model, rf_device *dev, const char *dir) {
    if (!model || !dev || !dir) return rf_error(RF_ERR_INVALID_ARG, "rf_model_load: null argument");
    *model = NULL;
    char path[4096], resolved[4096];
    RF_TRY(rf_model_dir_resolve(dir, resolved, sizeof resolved));
    dir = resolved;
    rf_config cfg;
    join(path, sizeof path, dir, "config.json");
    RF_TRY(rf_config_load_json(&cfg, path));
    rf_safetensors *st;
    join(path, sizeof path, dir, "model.safetensors");
    RF_TRY(rf_safetensors_open(&st, path));
    rf_model *m = NULL;
    rf_status s = model_new(&m, dev, &cfg);
    for (int i = 0; s == RF_OK && i < m->nparams; i++) {
        param *p = &m->params[i];
        const char *name = p->name;
        rf_st_tensor info;
        /* transformers 4.x saves only lm_head.bias (tied to decoder.bias). */
        if (&p->t == m->head_b && rf_safetensors_find(st, name, &info) != RF_OK) {
            rf_clear_error();
            name = "lm_head.bias";
        }
        s = rf_safetensors_load_tensor(st, name, &p->t);
    }
    rf_safetensors_close(st);
    if (s == RF_OK) {
        char where[4200];
        snprintf(where, sizeof where, "model '%s'", dir);
        s = rf_model_check_finite_at(m, where);
    }
    if (s == RF_OK) {
        m->seed = cfg.has_hash_seed ? (uint64_t)cfg.hash_seed : 0;
        *model = m;
    } else {
        rf_model_free(m);
    }
    return s;
}

rf_status rf_model_save(const rf_model *model, const char *dir) {
    if (!model || !dir) return rf_error(RF_ERR_INVALID_ARG, "rf_model_save: null argument");
    RF_TRY(rf_mkdir_p(dir));
    rf_safetensors_writer *w;
    RF_TRY(rf_safetensors_writer_new(&w));
    rf_status s = RF_OK;
    for (int i = 0; s == RF_OK && i < model->nparams; i++)
        s = rf_safetensors_writer_add_tensor(w, model->params[i].name, &model->params[i].t);
    /* HF 5.x keeps lm_head.bias as a parameter of its own: save it too. */
    if (s == RF_OK) s = rf_safetensors_writer_add_tensor(w, "lm_head.bias", model->head_b);
    if (s == RF_OK) s = rf_safetensors_writer_set_metadata(w, "format", "pt");
    char path[4096];
    if (s == RF_OK) {
        join(path, sizeof path, dir, "model.safetensors");
        s = rf_safetensors_write(w, path);
    }
    rf_safetensors_writer_free(w);
    RF_TRY(s);
    join(path, sizeof path, dir, "config.json");
    return rf_config_save_json(&model->cfg, path);
}

rf_status rf_model_set_rotations(rf_model *model, int layer_index, const float *rotations, size_t count) {
    if (!model) return rf_error(RF_ERR_INVALID_ARG, "rf_model_set_rotations: model is NULL");
    if (layer_index < 0 || layer_index >= model->cfg.num_layers || model->layers[layer_index].type != RF_ATTN_LSH)
        return rf_error(RF_ERR_INVALID_ARG, "rf_model_set_rotations: layer %d is not an LSH layer", layer_index);
    layer *l = &model->layers[layer_index];
    free(l->rotations);
    l->rotations = NULL;
    l->rotations_count = 0;
    if (!rotations) return RF_OK;
    l->rotations = malloc(count * sizeof *rotations);
    if (!l->rotations) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_model_set_rotations: no host memory");
    memcpy(l->rotations, rotations, count * sizeof *rotations);
    l->rotations_count = count;
    return RF_OK;
}

rf_status rf_model_set_num_hashes(rf_model *model, int num_hashes) {
    if (!model) return rf_error(RF_ERR_INVALID_ARG, "rf_model_set_num_hashes: model is NULL");
    if (num_hashes < 1)
        return rf_error(RF_ERR_INVALID_ARG, "rf_model_set_num_hashes: num_hashes = %d must be >= 1", num_hashes);
    for (int i = 0; i < model->cfg.num_layers; i++)
        if (model->layers[i].rotations)
            return rf_error(RF_ERR_INVALID_ARG, "rf_model_set_num_hashes: layer %d has explicit rotations for %d rounds",
                            i, model->cfg.num_hashes);
    model->cfg.num_hashes = num_hashes;
    return RF_OK;
}
