/* `reformer eval`: bits per byte of a model on a text file. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "core/core.h"
#include "reformer/model.h"
#include "text.h"

static void help(void) {
    printf("usage: reformer eval --model DIR --text FILE [--length L] [--device NAME]\n\n"
           "Cuts FILE's bytes into windows of L tokens (default: the model's largest),\n"
           "runs the model on each and prints the mean cross-entropy of each next byte in\n"
           "bits per byte (= bits per token: tokens are bytes, id = byte + 2).\n");
}

int cmd_eval(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return RF_EXIT_OK;
    }
    const char *dir = NULL, *text = NULL, *device = NULL;
    long long length = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--model")) dir = v;
        else if (v && !strcmp(a, "--text")) text = v;
        else if (v && !strcmp(a, "--device")) device = v;
        else if (!strcmp(a, "--length")) {
            if (!cli_int("eval", a, v, 0, 1 << 30, &length)) return RF_EXIT_USAGE;
        } else {
            fprintf(stderr, "reformer eval: unknown option or missing value '%s' (see --help)\n", a);
            return RF_EXIT_USAGE;
        }
        i++;
    }
    if (!dir || !text) {
        fprintf(stderr, "reformer eval: --model DIR and --text FILE are required\n");
        return RF_EXIT_USAGE;
    }
    if (length == 1) {
        fprintf(stderr, "reformer eval: --length: 1 is too short (a window of L predicts L - 1 bytes; 0: the model's "
                        "largest)\n");
        return RF_EXIT_USAGE;
    }
    unsigned char *bytes;
    size_t got;
    if (!cli_read_input("eval", "--text", text, &bytes, &got)) return RF_EXIT_FAIL;
    if (got < 2) { /* nothing to predict: not a success */
        fprintf(stderr, "reformer eval: --text: '%s' has %zu byte%s: nothing to evaluate (the first byte is only "
                        "context; need at least 2)\n", text, got, got == 1 ? "" : "s");
        free(bytes);
        return RF_EXIT_FAIL;
    }
    rf_device *dev;
    rf_status s = rf_device_open(&dev, device);
    if (s) {
        free(bytes);
        return cli_fail("eval", s);
    }
    rf_model *m;
    if ((s = rf_model_load(&m, dev, dir))) {
        free(bytes);
        rf_device_close(dev);
        return cli_fail("eval", s);
    }
    const rf_config *c = rf_model_config(m);
    int64_t V = c->vocab_size;
    int64_t max_len = c->axial_pos_embds ? (int64_t)c->axial_pos_shape[0] * c->axial_pos_shape[1] : c->max_position_embeddings;
    int64_t L = length ? length : max_len;
    int bad = 0;
    if (L > max_len) {
        fprintf(stderr, "reformer eval: --length %lld exceeds the model's %lld positions\n", (long long)L,
                (long long)max_len);
        bad = RF_EXIT_USAGE;
    } else if (L < 2) {
        fprintf(stderr, "reformer eval: the model has %lld position%s: too few to predict a byte\n",
                (long long)max_len, max_len == 1 ? "" : "s");
        bad = RF_EXIT_FAIL;
    } else if (V < 3) { /* ids 0 and 1 are padding and end of sequence */
        fprintf(stderr, "reformer eval: the model's vocab_size %lld is too small for text (byte tokens need >= 3)\n",
                (long long)V);
        bad = RF_EXIT_FAIL;
    }
    if (bad || cli_dry_run) {
        rf_model_free(m);
        rf_device_close(dev);
        free(bytes);
        return bad;
    }
    if (!text_is_bytes(V))
        fprintf(stderr, "reformer eval: note: vocabulary %lld < 258, bytes are folded into ids\n", (long long)V);
    int32_t *ids = malloc((size_t)L * sizeof *ids);
    if (!ids) s = rf_error(RF_ERR_OUT_OF_MEMORY, "no host memory for a window of %lld tokens", (long long)L);
    double nats = 0;
    int64_t counted = 0;
    /* Windows overlap by one byte so every byte after the first is predicted once. */
    for (int64_t start = 0; s == RF_OK && start + 1 < (int64_t)got; start += L - 1) {
        int64_t n = (int64_t)got - start < L ? (int64_t)got - start : L;
        for (int64_t i = 0; i < n; i++) ids[i] = text_encode_byte(bytes[start + i], V);
        rf_tensor logits;
        if ((s = rf_tensor_alloc(dev, &logits, RF_F32, 3, (int64_t[]){1, n, V}))) break;
        float loss;
        s = rf_model_forward(m, &logits, ids, NULL, 1, n, &loss);
        rf_tensor_free(&logits);
        if (s == RF_OK && !isfinite(loss)) { /* never print "nan bits per byte" */
            fprintf(stderr, "reformer eval: the model's loss on bytes %lld..%lld of '%s' is %s, not a number of bits\n",
                    (long long)start, (long long)(start + n - 1), text, isnan(loss) ? "nan" : "infinite");
            free(ids);
            free(bytes);
            rf_model_free(m);
            rf_device_close(dev);
            return RF_EXIT_FAIL;
        }
        nats += (double)loss * (double)(n - 1);
        counted += n - 1;
    }
    if (s == RF_OK)
        printf("%s: %lld bytes predicted, %.4f bits per byte\n", text, (long long)counted, nats / (double)counted / log(2.0));
    free(ids);
    free(bytes);
    rf_model_free(m);
    rf_device_close(dev);
    return s ? cli_fail("eval", s) : RF_EXIT_OK;
}
