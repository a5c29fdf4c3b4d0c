/* The Reformer language model: parameters under their HF names, creation,
 * loading and saving, and the inference forward pass (SPEC §8, §9, §11, §12;
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

#define MAX_PARAMS (16 * RF_CONFIG_MAX_LAYERS + 16)

typedef enum { INIT_NORMAL, INIT_AXIAL, INIT_ONES, INIT_ZEROS } init_kind;

typedef struct param {
    char name[128];
    rf_tensor t;
    init_kind init;
} param;

/* One layer's parameters (pointers into the model's table; unused ones NULL). */
typedef struct layer {
    rf_attn_type type;
    rf_tensor *ln_a_w, *ln_a_b;     /* attention.layer_norm */
    rf_tensor *qk, *q, *k, *v;      /* self_attention.{query_key | query, key}, value: [H·d, D] */
    rf_tensor *o;                   /* attention.output.dense: [D, H·d] */
    rf_tensor *ln_f_w, *ln_f_b;     /* feed_forward.layer_norm */
    rf_tensor *w1, *b1, *w2, *b2;   /* feed_forward.dense.dense, feed_forward.output.dense */
    float *rotations;               /* explicit rotations (host), or NULL */
    size_t rotations_count;
    int frozen_buckets[2];          /* automatic nb, fixed at the first hashing call (as HF) */
} layer;

struct rf_model {
    rf_config cfg;
    rf_device *dev;
    int nparams;
    param params[MAX_PARAMS];
    rf_tensor *word, *pos0, *pos1, *pos;   /* pos0/pos1 axial, pos plain */
    rf_tensor pos0_2d, pos1_2d;            /* [s0, d0] and [s1, d1] views of HF's 3-D weights */
    rf_tensor *ln_w, *ln_b, *head_w, *head_b;
    layer layers[RF_CONFIG_MAX_LAYERS];
    uint64_t seed;
    uint32_t step;                         /* forward calls: fresh rotations each (§2) */
};

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
    if (s != RF_OK) {
        rf_model_free(m);
        return s;
    }
    *out = m;
    return RF_OK;
}

void rf_model_free(rf_model *model) {
    if (!model) return;
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
    char path[4096];
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
    if (s != RF_OK) {
        rf_model_free(m);
        return s;
    }
    m->seed = cfg.has_hash_seed ? (uint64_t)cfg.hash_seed : 0;
    *model = m;
    return RF_OK;
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

/* ---- the forward pass ------------------------------------------------------- */

/* Scratch for one forward call, sized for [B, Lp] and reused by every layer:
 * memory is the same for 2 layers or 200 (§8). */
typedef struct scratch {
    rf_tensor ids, mask;            /* [B, Lp] i32 (mask only when padding) */
    rf_tensor x1, x2;               /* the reversible halves [B, Lp, D] */
    rf_tensor h;                    /* LayerNorm output [B, Lp, D] */
    rf_tensor a, b, c;              /* projections [B, Lp, H·d] */
    rf_tensor attn;                 /* attention output [B, Lp, H·d] */
    rf_tensor f;                    /* [B, Lp, D]: W_o·attn, then the FF output chunk */
    rf_tensor ff;                   /* FF intermediate [chunk rows, F] */
    rf_tensor joined;               /* [B, Lp, 2D] */
} scratch;

static void scratch_free(scratch *s) {
    rf_tensor *all[] = {&s->ids, &s->mask, &s->x1, &s->x2, &s->h, &s->a, &s->b, &s->c, &s->attn, &s->f, &s->ff, &s->joined};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->buf) rf_tensor_free(all[i]);
}

/* Least common multiple of the chunk lengths of the attention types present. */
static int64_t chunk_lcm(const rf_config *c, int64_t *min_chunk) {
    int64_t l = 1, mn = 0;
    for (int i = 0; i < c->num_layers; i++) {
        int64_t m = c->attn_layers[i] == RF_ATTN_LSH ? c->lsh_attn_chunk_length : c->local_attn_chunk_length;
        int64_t a = l, b = m;
        while (b) {
            int64_t t = a % b;
            a = b;
            b = t;
        }
        l = l / a * m;
        if (!mn || m < mn) mn = m;
    }
    *min_chunk = mn;
    return l;
}

/* A view of rows [r0, r0 + n) of a [rows, w] tensor. */
static rf_status rows_view(rf_tensor *out, const rf_tensor *t, int64_t r0, int64_t n, int64_t w) {
    return rf_tensor_view(out, t->buf, t->offset + (size_t)(r0 * w), RF_F32, 2, (int64_t[]){n, w});
}

/* One attention block: f = W_o · Attn(LN(x2)) (§5, §6). */
static rf_status attention_block(rf_model *m, int li, scratch *s, int64_t B, int64_t Lp, bool padded) {
    const rf_config *c = &m->cfg;
    layer *l = &m->layers[li];
    const rf_tensor *mask = padded ? &s->mask : NULL;
    RF_TRY(rf_layer_norm_forward(&s->h, NULL, NULL, &s->x2, l->ln_a_w, l->ln_a_b, (float)c->layer_norm_eps));
    RF_TRY(rf_linear_forward(&s->b, &s->h, l->v, NULL));
    if (l->type == RF_ATTN_LSH) {
        RF_TRY(rf_linear_forward(&s->a, &s->h, l->qk, NULL));
        rf_lsh_config lc = {.n_heads = c->num_attention_heads, .head_dim = c->attention_head_size,
                            .n_hashes = c->num_hashes, .chunk_len = c->lsh_attn_chunk_length,
                            .causal = c->is_decoder, .max_position = c->max_position_embeddings,
                            .seed = m->seed, .layer = (uint32_t)li, .step = m->step};
        if (Lp > c->lsh_attn_chunk_length) {
            /* The bucket count: configured, or HF's automatic rule on the first
             * length this layer hashes, then frozen on the layer (as HF does). */
            if (c->num_bucket_factors == 2) {
                lc.bucket_factors[0] = c->num_buckets[0];
                lc.bucket_factors[1] = c->num_buckets[1];
            } else if (c->num_bucket_factors == 1) {
                lc.n_buckets = c->num_buckets[0];
            } else {
                if (!l->frozen_buckets[0])
                    RF_TRY(rf_lsh_auto_buckets(l->frozen_buckets, Lp, c->lsh_attn_chunk_length, c->max_position_embeddings));
                if (l->frozen_buckets[1]) {
                    lc.bucket_factors[0] = l->frozen_buckets[0];
                    lc.bucket_factors[1] = l->frozen_buckets[1];
                } else {
                    lc.n_buckets = l->frozen_buckets[0];
                }
            }
        }
        rf_lsh_state st;
        RF_TRY(rf_lsh_state_init(&st, m->dev, &lc, B, Lp));
        rf_tensor rot = {0};
        rf_status r = RF_OK;
        if (l->rotations && !st.full) {
            size_t want = rf_tensor_numel(&st.rotations);
            if (want != l->rotations_count)
                r = rf_error(RF_ERR_INVALID_ARG, "layer %d: %zu explicit rotations given, the layer needs %zu", li,
                             l->rotations_count, want);
            else
                r = rf_tensor_alloc(m->dev, &rot, RF_F32, st.rotations.ndim, st.rotations.shape);
            if (r == RF_OK) r = rf_tensor_upload(&rot, l->rotations, want * sizeof(float));
        }
        if (r == RF_OK) r = rf_lsh_attention_forward(&s->attn, &st, &s->a, &s->b, mask, rot.buf ? &rot : NULL, &lc);
        if (rot.buf) rf_tensor_free(&rot);
        rf_lsh_state_free(&st);
        RF_TRY(r);
    } else {
        RF_TRY(rf_linear_forward(&s->a, &s->h, l->q, NULL));
        RF_TRY(rf_linear_forward(&s->c, &s->h, l->k, NULL));
        rf_attention_config ac = {.n_heads = c->num_attention_heads, .head_dim = c->attention_head_size,
                                  .chunk_len = c->local_attn_chunk_length,
                                  .chunks_before = c->local_num_chunks_before,
                                  .chunks_after = c->local_num_chunks_after, .causal = c->is_decoder};
        RF_TRY(rf_local_attention_forward(&s->attn, NULL, &s->a, &s->c, &s->b, mask, &ac));
    }
    return rf_linear_forward(&s->f, &s->attn, l->o, NULL);
}

/* x2 += FF(x1) in chunks of rows (§7): the F-wide intermediate is bounded by
 * chunk_size_feed_forward rows (0 = all rows at once). */
static rf_status feed_forward_block(rf_model *m, int li, scratch *s, int64_t rows) {
    const rf_config *c = &m->cfg;
    layer *l = &m->layers[li];
    int64_t D = c->hidden_size, F = c->feed_forward_size;
    int64_t chunk = s->ff.shape[0];
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t n = rows - r0 < chunk ? rows - r0 : chunk;
        rf_tensor x1, x2, h, f, ff;
        RF_TRY(rows_view(&x1, &s->x1, r0, n, D));
        RF_TRY(rows_view(&x2, &s->x2, r0, n, D));
        RF_TRY(rows_view(&h, &s->h, r0, n, D));
        RF_TRY(rows_view(&f, &s->f, r0, n, D));
        RF_TRY(rows_view(&ff, &s->ff, 0, n, F));
        RF_TRY(rf_layer_norm_forward(&h, NULL, NULL, &x1, l->ln_f_w, l->ln_f_b, (float)c->layer_norm_eps));
        RF_TRY(rf_linear_forward(&ff, &h, l->w1, l->b1));
        RF_TRY(rf_activation_forward(&ff, &ff, c->hidden_act));
        RF_TRY(rf_linear_forward(&f, &ff, l->w2, l->b2));
        RF_TRY(rf_add(&x2, &x2, &f, 1.0f));
    }
    return RF_OK;
}

static rf_status forward_padded(rf_model *m, scratch *s, rf_tensor *logits_full, int64_t B, int64_t Lp, bool padded) {
    const rf_config *c = &m->cfg;
    int64_t D = c->hidden_size;
    /* Embeddings (§9): word + position, then (X1, X2) = (x, x) (§8). */
    RF_TRY(rf_embedding_forward(&s->x1, &s->ids, m->word));
    if (m->pos0) RF_TRY(rf_axial_position_forward(&s->x1, &m->pos0_2d, &m->pos1_2d));
    else RF_TRY(rf_position_embedding_forward(&s->x1, m->pos));
    RF_TRY(rf_buffer_copy(s->x2.buf, 0, s->x1.buf, 0, (size_t)(B * Lp * D) * 4));
    /* The reversible stack (§8): Y1 = X1 + Attn(LN(X2)); Y2 = X2 + FF(Y1). */
    for (int i = 0; i < c->num_layers; i++) {
        RF_TRY(attention_block(m, i, s, B, Lp, padded));
        RF_TRY(rf_add(&s->x1, &s->x1, &s->f, 1.0f));
        RF_TRY(feed_forward_block(m, i, s, B * Lp));
    }
    /* Head (§9): LayerNorm over [Y1, Y2], then the decoder. */
    RF_TRY(rf_concat(&s->joined, &s->x1, &s->x2));
    RF_TRY(rf_layer_norm_forward(&s->joined, NULL, NULL, &s->joined, m->ln_w, m->ln_b, (float)c->layer_norm_eps));
    return rf_linear_forward(logits_full, &s->joined, m->head_w, m->head_b);
}

/* Mean cross-entropy of logits at t against ids[t+1] (§9), on the device. */
static rf_status lm_loss(rf_model *m, const rf_tensor *logits, const int32_t *ids, int64_t B, int64_t L, float *loss) {
    int32_t *targets = malloc((size_t)(B * L) * sizeof *targets);
    if (!targets) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_model_forward: no host memory for targets");
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < L; t++) targets[b * L + t] = t + 1 < L ? ids[b * L + t + 1] : -1;
    rf_tensor tt = {0}, lt = {0}, lse = {0};
    rf_status s = rf_tensor_alloc(m->dev, &tt, RF_I32, 2, (int64_t[]){B, L});
    if (s == RF_OK) s = rf_tensor_upload(&tt, targets, (size_t)(B * L) * sizeof *targets);
    if (s == RF_OK) s = rf_tensor_alloc(m->dev, &lt, RF_F32, 1, (int64_t[]){1});
    if (s == RF_OK) s = rf_tensor_alloc(m->dev, &lse, RF_F32, 2, (int64_t[]){B, L});
    if (s == RF_OK) s = rf_cross_entropy_forward(&lt, &lse, logits, &tt);
    if (s == RF_OK) s = rf_tensor_download(&lt, loss, sizeof *loss);
    if (tt.buf) rf_tensor_free(&tt);
    if (lt.buf) rf_tensor_free(&lt);
    if (lse.buf) rf_tensor_free(&lse);
    free(targets);
    return s;
}

rf_status rf_model_forward(rf_model *m, rf_tensor *logits, const int32_t *ids, const int32_t *attention_mask,
                           int64_t B, int64_t L, float *loss) {
    const char *op = "rf_model_forward";
    if (!m || !logits || !ids) return rf_error(RF_ERR_INVALID_ARG, "%s: null argument", op);
    const rf_config *c = &m->cfg;
    int64_t V = c->vocab_size, D = c->hidden_size, HD = (int64_t)c->num_attention_heads * c->attention_head_size;
    if (B <= 0 || L <= 0) return rf_error(RF_ERR_INVALID_ARG, "%s: batch %lld and length %lld must be positive", op, (long long)B, (long long)L);
    if (logits->buf && logits->buf->dev != m->dev)
        return rf_error(RF_ERR_INVALID_ARG, "%s: logits are on %s, the model on %s", op, logits->buf->dev->info.id, m->dev->info.id);
    RF_TRY(rf_check_tensor(op, "logits", logits, RF_F32, 3, (const int64_t[]){B, L, V}));
    for (int64_t i = 0; i < B * L; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return rf_error(RF_ERR_INVALID_ARG, "%s: token id %d at position %lld is outside the vocabulary [0, %lld)", op,
                            ids[i], (long long)i, (long long)V);
    /* Pad to a multiple of the chunk lengths, as the HF model does at
     * inference (docs/hf-compat.md §7): pad tokens masked as keys. */
    int64_t min_chunk, lcm = chunk_lcm(c, &min_chunk), Lp = L;
    if (L % lcm && L > min_chunk) Lp = (L / lcm + 1) * lcm;
    int has_zero = 0;
    for (int64_t i = 0; attention_mask && i < B * L; i++) has_zero |= attention_mask[i] == 0;
    bool padded = Lp != L || has_zero;
    int64_t max_len = c->axial_pos_embds ? (int64_t)c->axial_pos_shape[0] * c->axial_pos_shape[1] : c->max_position_embeddings;
    if (Lp > max_len)
        return rf_error(RF_ERR_INVALID_ARG, "%s: length %lld (padded to %lld) exceeds the %lld positions of the model", op,
                        (long long)L, (long long)Lp, (long long)max_len);

    scratch s;
    memset(&s, 0, sizeof s);
    int32_t *host_ids = calloc((size_t)(B * Lp), sizeof *host_ids), *host_mask = calloc((size_t)(B * Lp), sizeof *host_mask);
    rf_status r = host_ids && host_mask ? RF_OK : rf_error(RF_ERR_OUT_OF_MEMORY, "%s: no host memory", op);
    int pad_id = c->pad_token_id >= 0 ? c->pad_token_id : 0;
    for (int64_t b = 0; r == RF_OK && b < B; b++)
        for (int64_t t = 0; t < Lp; t++) {
            host_ids[b * Lp + t] = t < L ? ids[b * L + t] : pad_id;
            host_mask[b * Lp + t] = t < L ? (attention_mask ? attention_mask[b * L + t] != 0 : 1) : 0;
        }
    int64_t ff_rows = c->chunk_size_feed_forward > 0 ? c->chunk_size_feed_forward : B * Lp;
    if (ff_rows > B * Lp) ff_rows = B * Lp;
    rf_device *dev = m->dev;
    if (r == RF_OK) r = rf_tensor_alloc(dev, &s.ids, RF_I32, 2, (int64_t[]){B, Lp});
    if (r == RF_OK) r = rf_tensor_upload(&s.ids, host_ids, (size_t)(B * Lp) * 4);
    if (r == RF_OK && padded) r = rf_tensor_alloc(dev, &s.mask, RF_I32, 2, (int64_t[]){B, Lp});
    if (r == RF_OK && padded) r = rf_tensor_upload(&s.mask, host_mask, (size_t)(B * Lp) * 4);
    rf_tensor *bld[] = {&s.x1, &s.x2, &s.h, &s.f};
    for (size_t i = 0; r == RF_OK && i < 4; i++) r = rf_tensor_alloc(dev, bld[i], RF_F32, 3, (int64_t[]){B, Lp, D});
    rf_tensor *blh[] = {&s.a, &s.b, &s.c, &s.attn};
    for (size_t i = 0; r == RF_OK && i < 4; i++) r = rf_tensor_alloc(dev, blh[i], RF_F32, 3, (int64_t[]){B, Lp, HD});
    if (r == RF_OK) r = rf_tensor_alloc(dev, &s.ff, RF_F32, 2, (int64_t[]){ff_rows, c->feed_forward_size});
    if (r == RF_OK) r = rf_tensor_alloc(dev, &s.joined, RF_F32, 3, (int64_t[]){B, Lp, 2 * D});
    rf_tensor full = {0};
    if (r == RF_OK && Lp != L) r = rf_tensor_alloc(dev, &full, RF_F32, 3, (int64_t[]){B, Lp, V});
    if (r == RF_OK) r = forward_padded(m, &s, Lp != L ? &full : logits, B, Lp, padded);
    /* Return the first L positions of each sequence. */
    for (int64_t b = 0; r == RF_OK && Lp != L && b < B; b++)
        r = rf_buffer_copy(logits->buf, (logits->offset + (size_t)(b * L * V)) * 4, full.buf, (size_t)(b * Lp * V) * 4,
                           (size_t)(L * V) * 4);
    if (full.buf) rf_tensor_free(&full);
    scratch_free(&s);
    free(host_ids);
    free(host_mask);
    m->step++;
    if (r == RF_OK && loss) r = lm_loss(m, logits, ids, B, L, loss);
    return r;
}
