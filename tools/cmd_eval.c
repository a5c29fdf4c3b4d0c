/* `reformer eval`: bits per byte of a model on a text file. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
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
    long length = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--model")) dir = v, i++;
        else if (v && !strcmp(a, "--text")) text = v, i++;
        else if (v && !strcmp(a, "--device")) device = v, i++;
        else if (v && !strcmp(a, "--length")) length = strtol(v, NULL, 10), i++;
        else {
            fprintf(stderr, "reformer eval: unknown option or missing value '%s' (see --help)\n", a);
            return RF_EXIT_USAGE;
        }
    }
    if (!dir || !text) {
        fprintf(stderr, "reformer eval: --model DIR and --text FILE are required\n");
        return RF_EXIT_USAGE;
    }
    if (length < 0) {
        fprintf(stderr, "reformer eval: --length %ld must be positive (or 0: the model's largest)\n", length);
        return RF_EXIT_USAGE;
    }
    FILE *f = fopen(text, "rb");
    if (!f) {
        fprintf(stderr, "reformer eval: cannot open '%s'\n", text);
        return RF_EXIT_FAIL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc(size > 0 ? (size_t)size : 1);
    size_t got = fread(bytes, 1, (size_t)(size > 0 ? size : 0), f);
    fclose(f);
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
    if (L > max_len || L < 2 || (int64_t)got < 2) {
        fprintf(stderr, "reformer eval: need a window of 2..%lld tokens and a file of at least 2 bytes\n",
                (long long)max_len);
        rf_model_free(m);
        rf_device_close(dev);
        free(bytes);
        return RF_EXIT_USAGE;
    }
    if (!text_is_bytes(V))
        fprintf(stderr, "reformer eval: note: vocabulary %lld < 258, bytes are folded into ids\n", (long long)V);
    int32_t *ids = malloc((size_t)L * sizeof *ids);
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
