/* Strict numbers from the command line: the one parser every numeric option
 * of every subcommand goes through (see cli.h). The whole string must be the
 * number; it is range-checked before it is narrowed; NaN and infinities are
 * refused; a list holds at most its capacity. Failures print one line naming
 * the command, the option and what was wrong, e.g.
 *   reformer sample: --top-k: 2147483648 is out of range [0, 2147483647] */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static int bad(const char *cmd, const char *opt, const char *fmt, const char *v) {
    fprintf(stderr, "reformer %s: %s: ", cmd, opt);
    fprintf(stderr, fmt, v);
    fputc('\n', stderr);
    return 0;
}

/* Digits with an optional leading sign, and nothing else (strtoll alone takes
 * leading blanks, "0x", and stops at the first stranger). */
static int is_integer_text(const char *v, size_t n) {
    size_t i = (n > 0 && (v[0] == '-' || v[0] == '+')) ? 1 : 0;
    if (i == n) return 0;
    for (; i < n; i++)
        if (!isdigit((unsigned char)v[i])) return 0;
    return 1;
}

/* [v, v + n) as an integer in [lo, hi]; `shown` is what the message quotes. */
static int int_span(const char *cmd, const char *opt, const char *v, size_t n, long long lo, long long hi,
                    long long *out) {
    char buf[64];
    if (n == 0) return bad(cmd, opt, "an empty value is not an integer%s", "");
    if (n >= sizeof buf || !is_integer_text(v, n)) {
        fprintf(stderr, "reformer %s: %s: '%.*s' is not an integer\n", cmd, opt, (int)(n > 80 ? 80 : n), v);
        return 0;
    }
    memcpy(buf, v, n);
    buf[n] = '\0';
    errno = 0;
    char *end;
    long long x = strtoll(buf, &end, 10);
    if (errno == ERANGE || *end || x < lo || x > hi) {
        fprintf(stderr, "reformer %s: %s: %s is out of range [%lld, %lld]\n", cmd, opt, buf, lo, hi);
        return 0;
    }
    *out = x;
    return 1;
}

int cli_int(const char *cmd, const char *opt, const char *v, long long lo, long long hi, long long *out) {
    if (!v) return bad(cmd, opt, "needs a value%s", "");
    return int_span(cmd, opt, v, strlen(v), lo, hi, out);
}

int cli_int32(const char *cmd, const char *opt, const char *v, int lo, int hi, int *out) {
    long long x;
    if (!cli_int(cmd, opt, v, lo, hi, &x)) return 0;
    *out = (int)x;
    return 1;
}

int cli_u64(const char *cmd, const char *opt, const char *v, unsigned long long *out) {
    if (!v) return bad(cmd, opt, "needs a value%s", "");
    if (!*v) return bad(cmd, opt, "an empty value is not an integer%s", "");
    for (const char *p = v; *p; p++)
        if (!isdigit((unsigned char)*p)) {
            fprintf(stderr, "reformer %s: %s: '%.80s' is not an integer in [0, %llu]\n", cmd, opt, v,
                    (unsigned long long)UINT64_MAX);
            return 0;
        }
    errno = 0;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno == ERANGE || *end) {
        fprintf(stderr, "reformer %s: %s: %.80s is out of range [0, %llu]\n", cmd, opt, v,
                (unsigned long long)UINT64_MAX);
        return 0;
    }
    *out = x;
    return 1;
}

int cli_double(const char *cmd, const char *opt, const char *v, double lo, double hi, int lo_open, double *out) {
    if (!v) return bad(cmd, opt, "needs a value%s", "");
    if (!*v) return bad(cmd, opt, "an empty value is not a number%s", "");
    /* Only decimal numbers: no blanks, hex floats, "nan(...)" or "infinity". */
    for (const char *p = v; *p; p++)
        if (!isdigit((unsigned char)*p) && !strchr("+-.eE", *p))
            return bad(cmd, opt, "'%.80s' is not a finite decimal number", v);
    errno = 0;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end) return bad(cmd, opt, "'%.80s' is not a finite decimal number", v);
    if (!isfinite(x) || (errno == ERANGE && fabs(x) > 1) || x < lo || x > hi || (lo_open && x == lo)) {
        fprintf(stderr, "reformer %s: %s: %.80s is out of range %c%g, %g]\n", cmd, opt, v, lo_open ? '(' : '[', lo, hi);
        return 0;
    }
    *out = x;
    return 1;
}

int cli_int_list(const char *cmd, const char *opt, const char *v, long long lo, long long hi, long long *out, int cap,
                 int *n) {
    if (!v) return bad(cmd, opt, "needs a value%s", "");
    if (!*v) return bad(cmd, opt, "an empty list (give N or N,N,...)%s", "");
    int count = 0;
    for (const char *p = v;; p++) {
        size_t len = strcspn(p, ",");
        if (count == cap) {
            fprintf(stderr, "reformer %s: %s: '%.80s' has more than %d values\n", cmd, opt, v, cap);
            return 0;
        }
        char item[96];
        snprintf(item, sizeof item, "%s (item %d)", opt, count + 1);
        if (!int_span(cmd, item, p, len, lo, hi, &out[count])) return 0;
        count++;
        p += len;
        if (!*p) break;
    }
    *n = count;
    return 1;
}
