/* Checked size arithmetic, hashing and crash-safe file writes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/core.h"

int rf_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int rf_mul3_size(size_t a, size_t b, size_t c, size_t *out) {
    size_t ab;
    return rf_mul_size(a, b, &ab) && rf_mul_size(ab, c, out);
}

uint64_t rf_hash64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

rf_status rf_write_file_atomic(const char *path, const void *data, size_t n) {
    if (!path || (!data && n)) return rf_error(RF_ERR_INVALID_ARG, "rf_write_file_atomic: null argument");
    size_t len = strlen(path);
    char *tmp = malloc(len + 32);
    if (!tmp) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_write_file_atomic: no memory for a path");
    /* The pid keeps concurrent writers (two processes sharing a cache) apart. */
    snprintf(tmp, len + 32, "%s.tmp.%ld", path, (long)getpid());
    rf_status s = RF_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) s = rf_error(RF_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = n;
    while (s == RF_OK && left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            s = rf_error(RF_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    /* On the disk before the rename makes it visible. */
    if (s == RF_OK && fsync(fd) != 0) s = rf_error(RF_ERR_IO, "cannot flush '%s': %s", tmp, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && s == RF_OK) s = rf_error(RF_ERR_IO, "cannot flush '%s': %s", tmp, strerror(errno));
    if (s == RF_OK && rename(tmp, path) != 0)
        s = rf_error(RF_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    /* A failure leaves no temporary file behind (the target is untouched). */
    if (s != RF_OK && fd >= 0) unlink(tmp);
    free(tmp);
    return s;
}

const char *rf_file_kind(unsigned mode) {
    mode_t m = (mode_t)mode;
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

rf_status rf_check_regular_file(const char *path) {
    if (!path || !*path) return rf_error(RF_ERR_INVALID_ARG, "an empty path names no file");
    struct stat st;
    if (stat(path, &st) != 0)
        return rf_error(errno == ENOENT || errno == ENOTDIR ? RF_ERR_NOT_FOUND : RF_ERR_IO, "cannot open '%s': %s",
                        path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return rf_error(RF_ERR_IO, "'%s' is a directory, not a file", path);
    if (!S_ISREG(st.st_mode))
        return rf_error(RF_ERR_IO, "'%s' is %s, not a regular file", path, rf_file_kind((unsigned)st.st_mode));
    return RF_OK;
}

rf_status rf_read_file(const char *path, void **data, size_t *n) {
    if (!path || !data || !n) return rf_error(RF_ERR_INVALID_ARG, "rf_read_file: null argument");
    /* Check the type before opening: opening a FIFO for reading blocks until
     * a writer comes, and a folder "opens" and reads as 0 bytes. */
    RF_TRY(rf_check_regular_file(path));
    FILE *f = fopen(path, "rb");
    if (!f) return rf_error(errno == ENOENT ? RF_ERR_NOT_FOUND : RF_ERR_IO,
                            "cannot open '%s': %s", path, strerror(errno));
    rf_status s = RF_OK;
    struct stat st;
    size_t size = 0;
    char *buf = NULL;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 || !S_ISREG(st.st_mode))
        s = rf_error(RF_ERR_IO, "'%s' changed while it was opened: no longer a regular file", path);
    if (s == RF_OK) {
        size = (size_t)st.st_size;
        buf = malloc(size + 1); /* +1: callers may treat it as a string */
        if (!buf) s = rf_error(RF_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes to read '%s'", size, path);
    }
    if (s == RF_OK && fread(buf, 1, size, f) != size)
        s = rf_error(RF_ERR_IO, "cannot read all %zu bytes of '%s' (did it shrink while being read?)", size, path);
    fclose(f);
    if (s == RF_OK) {
        buf[size] = '\0';
        *data = buf;
        *n = size;
    } else {
        free(buf);
    }
    return s;
}

rf_status rf_mkdir_p(const char *path) {
    char buf[4096];
    if (!path || !*path) return rf_error(RF_ERR_INVALID_ARG, "rf_mkdir_p: an empty path names no folder");
    if (strlen(path) >= sizeof buf)
        return rf_error(RF_ERR_INVALID_ARG, "rf_mkdir_p: a path of %zu bytes is too long", strlen(path));
    strcpy(buf, path);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (buf[0] && mkdir(buf, 0755) != 0 && errno != EEXIST)
                return rf_error(RF_ERR_IO, "cannot create folder '%s': %s", buf, strerror(errno));
            *p = c;
            if (c == '\0') break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return rf_error(RF_ERR_IO, "cannot use '%s' as a folder: %s", path,
                        stat(path, &st) != 0 ? strerror(errno) : "it exists and is not a directory");
    return RF_OK;
}
