/* Every numeric option of every `reformer` subcommand through the same bad
 * values (issue 14, class 1): each must exit 2 with exactly one line that
 * names the command and the option — no crash, no hang (10 s timeout), no
 * half-parsed or wrapped value accepted. A second test reads each
 * subcommand's --help and fails if it documents a numeric option this table
 * does not cover, so a new option cannot skip the check. */
#include "harness.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

typedef enum { INT, U64, FLOAT, LIST } kind;

static const struct {
    const char *cmd; /* the subcommand as typed ("bench attention") */
    const char *opt;
    kind k;
    const char *prefix; /* how the message starts */
} options[] = {
    {"sample", "--length", INT, "reformer sample: --length"},
    {"sample", "--temperature", FLOAT, "reformer sample: --temperature"},
    {"sample", "--top-k", INT, "reformer sample: --top-k"},
    {"sample", "--seed", U64, "reformer sample: --seed"},
    {"sample", "--batch", INT, "reformer sample: --batch"},
    {"sample", "--top-p", FLOAT, "reformer sample: --top-p"},
    {"eval", "--length", INT, "reformer eval: --length"},
    {"train", "--steps", INT, "reformer train: --steps"},
    {"train", "--batch", INT, "reformer train: --batch"},
    {"train", "--accumulate", INT, "reformer train: --accumulate"},
    {"train", "--length", INT, "reformer train: --length"},
    {"train", "--hashes", INT, "reformer train: --hashes"},
    {"train", "--eval-hashes", LIST, "reformer train: --eval-hashes"},
    {"train", "--hidden", INT, "reformer train: --hidden"},
    {"train", "--heads", INT, "reformer train: --heads"},
    {"train", "--vocab", INT, "reformer train: --vocab"},
    {"train", "--chunk", INT, "reformer train: --chunk"},
    {"train", "--lr", FLOAT, "reformer train: --lr"},
    {"train", "--eval-every", INT, "reformer train: --eval-every"},
    {"train", "--save-every", INT, "reformer train: --save-every"},
    {"train", "--eval-batches", INT, "reformer train: --eval-batches"},
    {"train", "--seed", U64, "reformer train: --seed"},
    {"verify", "--tolerance-scale", FLOAT, "reformer verify: --tolerance-scale"},
    {"bench attention", "--runs", INT, "reformer bench: --runs"},
    {"bench gemm", "--runs", INT, "reformer bench: --runs"},
    {"bench model", "--runs", INT, "reformer bench: --runs"},
    {"bench attention", "--tokens", INT, "reformer bench attention: --tokens"},
    {"bench attention", "--lengths", LIST, "reformer bench attention: --lengths"},
    {"bench attention", "--hashes", LIST, "reformer bench attention: --hashes"},
    {"bench attention", "--heads", INT, "reformer bench attention: --heads"},
    {"bench attention", "--head-dim", INT, "reformer bench attention: --head-dim"},
    {"bench attention", "--chunk", INT, "reformer bench attention: --chunk"},
    {"bench attention", "--full-max", INT, "reformer bench attention: --full-max"},
    {"bench gemm", "--sizes", LIST, "reformer bench gemm: --sizes"},
    {"bench model", "--length", INT, "reformer bench model: --length"},
    {"bench model", "--layers", LIST, "reformer bench model: --layers"},
    /* bench model --config (its own options; the file is read after them) */
    {"bench model --config x", "--runs", INT, "reformer bench: --runs"},
    {"bench model --config x", "--batch", INT, "reformer bench model: --batch"},
    {"bench model --config x", "--lengths", LIST, "reformer bench model: --lengths"},
    {"bench decode", "--prompt", INT, "reformer bench decode: --prompt"},
    {"bench decode", "--generate", INT, "reformer bench decode: --generate"},
    {"bench decode", "--samples", INT, "reformer bench decode: --samples"},
    {"tune", "--runs", INT, "reformer tune: --runs"},
    {"tune", "--budget", FLOAT, "reformer tune: --budget"},
};
enum { NOPTS = sizeof options / sizeof options[0] };

/* Values every kind must refuse, and those one kind must. */
static const char *const common_bad[] = {"", "abc", "12x", "nan", "inf", "-inf", "99999999999999999999999", " 5",
                                         "0x10", "-5", NULL};
static const char *const int_bad[] = {"1e3", "1.5", "+", "-", "9223372036854775808", NULL};
static const char *const u64_bad[] = {"1e3", "-1", "18446744073709551616", NULL};
static const char *const float_bad[] = {"1e999", "-1e999", "nan(1)", "infinity", "0x1p3", "1e3e3", NULL};
static const char *const list_bad[] = {"1,,2", "1,x", ",1", "1,", "1e3", "1,-2",
                                       "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,"
                                       "30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,"
                                       "57,58,59,60,61,62,63,64,65,66,67,68,69,70",
                                       NULL};

static char out[1 << 14];

/* Run reformer with a 10 s limit; the exit status (124: timed out, -1: a
 * signal), output (stdout and stderr) in `out`. */
static int run(const char *args) { return th_run_cli("timeout -k 2 10", args, out, sizeof out); }

static int checked;

static void expect_refused(int i, const char *value) {
    char args[2048];
    snprintf(args, sizeof args, "%s %s '%s'", options[i].cmd, options[i].opt, value);
    int rc = run(args);
    if (rc != 2) fail_msg("reformer %s: exit %d, expected 2:\n%s", args, rc, out);
    if (strncmp(out, options[i].prefix, strlen(options[i].prefix)))
        fail_msg("reformer %s: the message does not start with \"%s\":\n%s", args, options[i].prefix, out);
    const char *nl = strchr(out, '\n');
    if (!nl || nl[1]) fail_msg("reformer %s: expected one line, got:\n%s", args, out);
    checked++;
}

static void every_numeric_option_refuses_bad_values(void **state) {
    for (int i = 0; i < NOPTS; i++) {
        for (int v = 0; common_bad[v]; v++) {
            /* "-5" is a fine item count nowhere; " 5" and "0x10" nowhere either. */
            expect_refused(i, common_bad[v]);
        }
        const char *const *more = options[i].k == INT ? int_bad : options[i].k == U64 ? u64_bad
                                : options[i].k == FLOAT ? float_bad : list_bad;
        for (int v = 0; more[v]; v++) expect_refused(i, more[v]);
        /* A missing value (the option last) names the option too. */
        char args[256];
        snprintf(args, sizeof args, "%s %s", options[i].cmd, options[i].opt);
        assert_int_equal(run(args), 2);
        if (!strstr(out, options[i].opt)) fail_msg("reformer %s: the message does not name the option:\n%s", args, out);
    }
    print_message("%d bad values refused\n", checked);
}

/* The messages say what was wrong with the value, and its range. */
static void messages_name_the_value_and_range(void **state) {
    static const struct {
        const char *args, *want;
    } cases[] = {
        {"sample --top-k 2147483648", "reformer sample: --top-k: 2147483648 is out of range [0, 2147483647]\n"},
        {"sample --length 9223372036854775807",
         "reformer sample: --length: 9223372036854775807 is out of range [1, 1073741824]\n"},
        {"sample --length 1e3", "reformer sample: --length: '1e3' is not an integer\n"},
        {"sample --seed abc", "reformer sample: --seed: 'abc' is not an integer in [0, 18446744073709551615]\n"},
        {"sample --temperature nan", "reformer sample: --temperature: 'nan' is not a finite decimal number\n"},
        {"sample --temperature -1", "reformer sample: --temperature: -1 is out of range [0, 1e+06]\n"},
        {"train --lr 0", "reformer train: --lr: 0 is out of range (0, 100]\n"},
        {"train --eval-hashes 1,2,3,4,5,6,7,8,9", "reformer train: --eval-hashes: '1,2,3,4,5,6,7,8,9' has more than 8 values\n"},
        {"train --eval-hashes 1,x", "reformer train: --eval-hashes (item 2): 'x' is not an integer\n"},
        {"eval --length ''", "reformer eval: --length: an empty value is not an integer\n"},
        {"bench attention --hashes 1,65", "reformer bench attention: --hashes (item 2): 65 is out of range [1, 64]\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(run(cases[i].args), 2);
        if (strcmp(out, cases[i].want)) fail_msg("reformer %s:\n got  %s want %s", cases[i].args, out, cases[i].want);
    }
    /* Good values still parse: these fail later, for other reasons. */
    assert_int_equal(run("sample --length 5 --top-k 2147483647 --seed 18446744073709551615 --temperature 1e-3"), 2);
    assert_non_null(strstr(out, "give exactly one of --model DIR or --random"));
    assert_int_equal(run("train --eval-hashes 1,2,3,4,5,6,7,8 --lr 1e-3 --steps 1000000000000"), 2);
    assert_non_null(strstr(out, "give exactly one of --task copy or --text FILE"));
}

/* Every "--opt N"-style option in a subcommand's help is in the table. */
static int numeric_metavar(const char *m) {
    static const char *const vars[] = {"N", "L", "K", "S", "T", "X", "R", "B", "D", "H", "V", "M", "L1", "R1", "S1", NULL};
    char word[16];
    size_t n = 0;
    while (n < sizeof word - 1 && (isupper((unsigned char)m[n]) || isdigit((unsigned char)m[n]))) word[n] = m[n], n++;
    word[n] = '\0';
    if (isalpha((unsigned char)m[n]) && islower((unsigned char)m[n])) return 0;
    for (int i = 0; vars[i]; i++)
        if (!strcmp(word, vars[i])) return 1;
    return 0;
}

static void the_table_covers_every_documented_numeric_option(void **state) {
    static const char *const cmds[] = {"sample", "eval", "train", "verify", "bench attention", "bench gemm",
                                       "bench model", "bench model --config x", "bench decode", "tune"};
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        char args[128];
        snprintf(args, sizeof args, "%s --help", cmds[c]);
        assert_int_equal(run(args), 0);
        for (const char *p = out; (p = strstr(p, "--")); p += 2) {
            char opt[40];
            size_t n = 0;
            while (n < sizeof opt - 1 && (islower((unsigned char)p[n]) || p[n] == '-')) opt[n] = p[n], n++;
            opt[n] = '\0';
            if (n < 3 || p[n] != ' ' || !numeric_metavar(p + n + 1)) continue;
            int found = 0;
            for (int i = 0; i < NOPTS; i++) found |= !strcmp(options[i].cmd, cmds[c]) && !strcmp(options[i].opt, opt);
            if (!found) fail_msg("reformer %s documents %s with a number, but the bad-value table lacks it", cmds[c], opt);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_numeric_option_refuses_bad_values),
        cmocka_unit_test(messages_name_the_value_and_range),
        cmocka_unit_test(the_table_covers_every_documented_numeric_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
