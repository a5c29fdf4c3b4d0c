/* Kernel programs: embedded sources (or $RF_KERNEL_DIR), `#include "x.cl"`
 * expansion, build at first use per device and options, and the on-disk
 * binary cache. Also the launch helper every OpenCL op uses.
 *
 * What the kernel cache trusts. A cached binary goes straight to the driver
 * (clCreateProgramWithBinary), and a driver may crash on a binary it did not
 * write, so a file is used only if all of these hold:
 *   - it lies in $XDG_CACHE_HOME/reformer-cl (or ~/.cache/reformer-cl), a
 *     folder owned by this user and writable by no one else (we create it
 *     0700), and the file itself is a regular file owned by this user;
 *   - its header has our magic and format version, the 64-bit key of (source,
 *     options, device, driver, platform), and the payload size;
 *   - the SHA-256 of (the writer's identity: format, library version, device
 *     name, driver and platform versions, key) followed by the whole payload
 *     matches the one stored.
 * This catches truncation, corruption, files from another driver, device or
 * version, and stray files; it does not defend against this same user
 * deliberately forging a file (they can run code anyway). Any failed check
 * only costs a rebuild from source (logged at RF_LOG=warn). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "device/opencl/cl_backend.h"
#include "device/opencl/cl_sources.h"
#include "device/opencl/cl_tune.h"

/* Bump when the cache file layout or what goes into the key changes. */
#define CACHE_FORMAT_VERSION 2
static const char CACHE_MAGIC[8] = {'R', 'F', 'C', 'L', 'B', 'I', 'N', '2'};
enum { CACHE_HEADER = 8 + 8 + 8 + 32 }; /* magic, key, size, SHA-256 */

/* ---- sources ------------------------------------------------------------ */

/* The text of cl/<name>: from $RF_KERNEL_DIR when set (kernel development),
 * else embedded. Returns a malloc'd copy. */
static rf_status load_source(const char *name, char **text) {
    const char *dir = getenv("RF_KERNEL_DIR");
    if (dir && *dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        size_t n;
        return rf_read_file(path, (void **)text, &n);
    }
    for (const rf_cl_source *s = rf_cl_sources; s->name; s++) {
        if (!strcmp(s->name, name)) {
            *text = strdup(s->text);
            return *text ? RF_OK : rf_error(RF_ERR_OUT_OF_MEMORY, "no memory for kernel source");
        }
    }
    return rf_error(RF_ERR_NOT_FOUND, "kernel source '%s' is not embedded in this build", name);
}

/* Append s[0..n) to a growing string. */
static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = (*cap ? *cap * 2 : 4096);
        while (c < *len + n + 1) c *= 2;
        char *b = realloc(*buf, c);
        if (!b) return 0;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 1;
}

/* The source of `name` with each line `#include "other.cl"` replaced by that
 * file (one level deep is all the kernels need: philox.cl, common.cl). Runtime
 * compilers cannot see our folder, hence the textual expansion. */
static rf_status expand_source(const char *name, int depth, char **out) {
    if (depth > 4) return rf_error(RF_ERR_BUILD, "kernel source '%s': #include nested too deeply", name);
    char *text;
    RF_TRY(load_source(name, &text));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    const char *p = text;
    rf_status s = RF_OK;
    while (*p && s == RF_OK) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p + 1) : strlen(p);
        char inc[128];
        if (sscanf(p, "#include \"%127[^\"]\"", inc) == 1) {
            char *sub;
            s = expand_source(inc, depth + 1, &sub);
            if (s == RF_OK) {
                if (!append(&buf, &len, &cap, sub, strlen(sub)) || !append(&buf, &len, &cap, "\n", 1))
                    s = rf_error(RF_ERR_OUT_OF_MEMORY, "no memory for kernel source");
                free(sub);
            }
        } else if (!append(&buf, &len, &cap, p, n)) {
            s = rf_error(RF_ERR_OUT_OF_MEMORY, "no memory for kernel source");
        }
        p += n;
    }
    free(text);
    if (s == RF_OK && !buf && !(buf = strdup(""))) s = rf_error(RF_ERR_OUT_OF_MEMORY, "no memory for kernel source");
    if (s == RF_OK) *out = buf;
    else free(buf);
    return s;
}

/* ---- the disk cache --------------------------------------------------------- */

void rf_cl_cache_dir(char *out, size_t n) {
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (xdg && *xdg) snprintf(out, n, "%s/reformer-cl", xdg);
    else snprintf(out, n, "%s/.cache/reformer-cl", home && *home ? home : "/tmp");
}

static uint64_t cache_key(const rf_device *dev, const char *source, const char *options) {
    int version = CACHE_FORMAT_VERSION;
    uint64_t h = RF_HASH_INIT;
    h = rf_hash64(h, &version, sizeof version);
    h = rf_hash64(h, source, strlen(source) + 1);
    h = rf_hash64(h, options, strlen(options) + 1);
    h = rf_hash64(h, dev->info.name, strlen(dev->info.name) + 1);
    h = rf_hash64(h, dev->info.driver_version, strlen(dev->info.driver_version) + 1);
    h = rf_hash64(h, dev->info.platform_version, strlen(dev->info.platform_version) + 1);
    return h;
}

static void cache_path(uint64_t key, char *out, size_t n) {
    char dir[3500];
    rf_cl_cache_dir(dir, sizeof dir);
    snprintf(out, n, "%s/%016llx.bin", dir, (unsigned long long)key);
}

/* SHA-256 of the writer's identity and key, then the payload. */
static void cache_digest(const rf_device *dev, uint64_t key, const unsigned char *bin, size_t size,
                         unsigned char out[32]) {
    rf_sha256 h;
    rf_sha256_init(&h);
    char who[1024];
    int n = snprintf(who, sizeof who, "reformer-cl kernel cache v%d\n%s\n%s\n%s\n%016llx\n", CACHE_FORMAT_VERSION,
                     dev->info.name, dev->info.driver_version, dev->info.platform_version, (unsigned long long)key);
    rf_sha256_update(&h, who, n > 0 && (size_t)n < sizeof who ? (size_t)n : sizeof who - 1);
    rf_sha256_update(&h, bin, size);
    rf_sha256_final(&h, out);
}

/* The cache folder and file belong to this user and no one else may write
 * the folder (see the top of this file); a reason otherwise. */
static const char *untrusted(const char *path) {
    char dir[3500];
    rf_cl_cache_dir(dir, sizeof dir);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return "the cache folder is not a folder";
    if (st.st_uid != getuid() || (st.st_mode & 022)) return "the cache folder is not this user's alone";
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) return "not a regular file";
    if (st.st_uid != getuid()) return "the file belongs to another user";
    return NULL;
}

/* File: magic[8], key u64, size u64, SHA-256[32] (cache_digest), binary. */
static rf_status cache_load(rf_device *dev, uint64_t key, const char *options, cl_program *out) {
    char path[4096];
    cache_path(key, path, sizeof path);
    struct stat st;
    if (lstat(path, &st) != 0) return RF_ERR_NOT_FOUND;
    const char *why = untrusted(path);
    void *data = NULL;
    size_t n = 0;
    if (!why && rf_read_file(path, &data, &n) != RF_OK) {
        rf_clear_error();
        why = "unreadable";
    }
    const unsigned char *p = data;
    uint64_t fkey, size;
    unsigned char sum[32];
    if (!why && (n < CACHE_HEADER || memcmp(p, CACHE_MAGIC, 8))) why = "not a cache file of this format";
    if (!why) {
        memcpy(&fkey, p + 8, 8);
        memcpy(&size, p + 16, 8);
        if (fkey != key || size != n - CACHE_HEADER || size == 0) why = "its key or size does not match";
    }
    if (!why) {
        cache_digest(dev, key, p + CACHE_HEADER, (size_t)size, sum);
        if (memcmp(sum, p + 24, 32)) why = "its SHA-256 does not match";
    }
    cl_program prog = NULL;
    if (!why) {
        rf_cl_context *cl = rf_cl_ctx(dev);
        size_t bsize = (size_t)size;
        const unsigned char *bin = p + CACHE_HEADER;
        cl_int bstatus, err;
        prog = clCreateProgramWithBinary(cl->context, 1, &cl->device, &bsize, &bin, &bstatus, &err);
        if (err != CL_SUCCESS || bstatus != CL_SUCCESS) why = "the driver refused the binary";
        else if (clBuildProgram(prog, 1, &cl->device, options, NULL, NULL) != CL_SUCCESS) why = "the binary did not build";
        if (why && prog) {
            clReleaseProgram(prog);
            prog = NULL;
        }
    }
    free(data);
    if (why) {
        dev->programs.cache_rejects++;
        rf_log(RF_LOG_WARN, "kernel cache file %s is unusable (%s); rebuilding from source", path, why);
        return RF_ERR_FORMAT;
    }
    dev->programs.cache_hits++;
    rf_log(RF_LOG_DEBUG, "kernel cache hit: %s", path);
    *out = prog;
    return RF_OK;
}

/* The cache folder, made 0700 when we create it. */
rf_status rf_cl_cache_mkdir(const char *dir) {
    struct stat st;
    if (stat(dir, &st) == 0) return RF_OK;
    char parent[3500];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        RF_TRY(rf_mkdir_p(parent));
    }
    if (mkdir(dir, 0700) != 0 && stat(dir, &st) != 0)
        return rf_error(RF_ERR_IO, "cannot create folder '%s'", dir);
    return RF_OK;
}

static void cache_store(rf_device *dev, uint64_t key, cl_program prog) {
    size_t size = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS || size == 0) return;
    unsigned char *file = malloc(CACHE_HEADER + size);
    if (!file) return;
    unsigned char *bin = file + CACHE_HEADER;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) == CL_SUCCESS) {
        uint64_t sz = size;
        memcpy(file, CACHE_MAGIC, 8);
        memcpy(file + 8, &key, 8);
        memcpy(file + 16, &sz, 8);
        cache_digest(dev, key, bin, size, file + 24);
        char dir[3500], path[4096];
        rf_cl_cache_dir(dir, sizeof dir);
        cache_path(key, path, sizeof path);
        /* A cache that cannot be written only costs time: warn, never fail. */
        if (rf_cl_cache_mkdir(dir) == RF_OK && rf_write_file_atomic(path, file, CACHE_HEADER + size) == RF_OK) {
            dev->programs.cache_writes++;
            rf_log(RF_LOG_DEBUG, "kernel cache write: %s", path);
        } else {
            rf_log(RF_LOG_WARN, "cannot write kernel cache %s: %s", path, rf_last_error());
            rf_clear_error();
        }
    }
    free(file);
}

/* ---- building ----------------------------------------------------------------- */

static rf_status build_from_source(rf_device *dev, const char *file, const char *source,
                                   const char *options, cl_program *out) {
    rf_cl_context *cl = rf_cl_ctx(dev);
    cl_int err;
    cl_program prog = clCreateProgramWithSource(cl->context, 1, &source, NULL, &err);
    if (err != CL_SUCCESS) return rf_cl_fail(err, "clCreateProgramWithSource");
    uint64_t t0 = rf_now_ns();
    err = clBuildProgram(prog, 1, &cl->device, options, NULL, NULL);
    rf_status s = RF_OK;
    if (err != CL_SUCCESS) {
        size_t n = 0;
        clGetProgramBuildInfo(prog, cl->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
        char *log = malloc(n + 1);
        if (log) {
            log[0] = '\0';
            clGetProgramBuildInfo(prog, cl->device, CL_PROGRAM_BUILD_LOG, n, log, NULL);
            log[n] = '\0';
        }
        s = rf_error(RF_ERR_BUILD, "building %s (%s) on %s failed: %s\n%s", file, options, dev->info.id,
                     rf_cl_error_name(err), log ? log : "(no log)");
        free(log);
        clReleaseProgram(prog);
    } else {
        dev->programs.source_builds++;
        rf_log(RF_LOG_DEBUG, "built %s [%s] on %s in %.1f ms", file, options, dev->info.id,
               (double)(rf_now_ns() - t0) / 1e6);
        *out = prog;
    }
    return s;
}

static rf_status get_program(rf_device *dev, const char *file, const char *defines, rf_cl_program **out) {
    rf_cl_context *cl = rf_cl_ctx(dev);
    char options[512];
    int n = snprintf(options, sizeof options, "-cl-std=CL1.2 %s", defines ? defines : "");
    if (n < 0 || (size_t)n >= sizeof options)
        return rf_error(RF_ERR_INVALID_ARG, "kernel options for %s are too long", file);
    for (int i = 0; i < cl->nprograms; i++)
        if (!strcmp(cl->programs[i].file, file) && !strcmp(cl->programs[i].options, options)) {
            *out = &cl->programs[i];
            return RF_OK;
        }
    if (cl->nprograms == RF_CL_MAX_PROGRAMS)
        return rf_error(RF_ERR_UNSUPPORTED, "more than %d kernel programs on one device", RF_CL_MAX_PROGRAMS);
    char *source;
    RF_TRY(expand_source(file, 0, &source));
    uint64_t key = cache_key(dev, source, options);
    cl_program prog = NULL;
    rf_status s = cache_load(dev, key, options, &prog);
    if (s != RF_OK) {
        s = build_from_source(dev, file, source, options, &prog);
        if (s == RF_OK) cache_store(dev, key, prog);
    }
    free(source);
    RF_TRY(s);
    rf_cl_program *p = &cl->programs[cl->nprograms++];
    memset(p, 0, sizeof *p);
    snprintf(p->file, sizeof p->file, "%s", file);
    snprintf(p->options, sizeof p->options, "%s", options);
    p->program = prog;
    *out = p;
    return RF_OK;
}

rf_status rf_cl_kernel(rf_device *dev, const char *file, const char *options, const char *kernel, cl_kernel *out) {
    rf_cl_program *p = NULL;
    RF_TRY(get_program(dev, file, options, &p));
    for (int i = 0; i < p->nkernels; i++)
        if (!strcmp(p->kernels[i].name, kernel)) {
            *out = p->kernels[i].kernel;
            return RF_OK;
        }
    if (p->nkernels == RF_CL_MAX_KERNELS)
        return rf_error(RF_ERR_UNSUPPORTED, "more than %d kernels in %s", RF_CL_MAX_KERNELS, file);
    cl_int err;
    cl_kernel k = clCreateKernel(p->program, kernel, &err);
    if (err != CL_SUCCESS) {
        char what[160];
        snprintf(what, sizeof what, "clCreateKernel(%s in %s)", kernel, file);
        return rf_cl_fail(err, what);
    }
    snprintf(p->kernels[p->nkernels].name, sizeof p->kernels[0].name, "%s", kernel);
    p->kernels[p->nkernels++].kernel = k;
    *out = k;
    return RF_OK;
}

void rf_cl_programs_release(rf_cl_context *cl) {
    for (int i = 0; i < cl->nprograms; i++) {
        for (int k = 0; k < cl->programs[i].nkernels; k++) clReleaseKernel(cl->programs[i].kernels[k].kernel);
        clReleaseProgram(cl->programs[i].program);
    }
    cl->nprograms = 0;
}

/* ---- launching ------------------------------------------------------------ */

rf_status rf_cl_launch(rf_device *dev, cl_kernel kernel, const char *op, int dims, const size_t *global,
                       const size_t *local, int nargs, const rf_cl_arg *args) {
    for (int i = 0; i < nargs; i++) {
        cl_int err = clSetKernelArg(kernel, (cl_uint)i, args[i].size, args[i].value);
        if (err != CL_SUCCESS) {
            char what[128];
            snprintf(what, sizeof what, "%s: clSetKernelArg(%d)", op, i);
            return rf_cl_fail(err, what);
        }
    }
    size_t g[3];
    for (int d = 0; d < dims; d++) {
        if (global[d] == 0) return RF_OK; /* nothing to do */
        g[d] = local ? rf_round_up(global[d], local[d]) : global[d];
    }
    cl_event ev;
    cl_int err = clEnqueueNDRangeKernel(rf_cl_ctx(dev)->queue, kernel, (cl_uint)dims, NULL, g, local, 0, NULL, &ev);
    if (err != CL_SUCCESS) {
        char what[128];
        snprintf(what, sizeof what, "%s: clEnqueueNDRangeKernel", op);
        return rf_cl_fail(err, what);
    }
    return rf_cl_record(dev, ev, op);
}

rf_status rf_cl_group_size(rf_device *dev, cl_kernel kernel, size_t want, size_t *out) {
    size_t kmax = 0;
    cl_int err =
        clGetKernelWorkGroupInfo(kernel, rf_cl_ctx(dev)->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax, &kmax, NULL);
    if (err != CL_SUCCESS) return rf_cl_fail(err, "clGetKernelWorkGroupInfo");
    size_t limit = kmax < dev->info.max_work_group_size ? kmax : dev->info.max_work_group_size;
    if (want < limit) limit = want;
    size_t g = 1;
    while (g * 2 <= limit) g *= 2;
    *out = g;
    return RF_OK;
}

/* W lanes per row: "<family>.lanes", no wider than the row's power of two (a
 * row of 8 leaves no lane idle); default 32 on a GPU (a warp reading 32
 * neighbouring words), 8 elsewhere: each lane adds its row's W partials, and
 * on PoCL at 4,096 rows × 256 a LayerNorm forward ran in about 2 ms with 1
 * to 8 lanes, 5 ms with 32. The group: "<family>.group" items (default 256,
 * G = 256 / W rows), cut to the kernel's and device's limits
 * (rf_cl_group_size; the `min` profile's 256 items fit the defaults whole).
 * Scratch: 2 KiB at 256 items, 8 KiB at 1,024, under OpenCL's 32 KiB
 * minimum of local memory. */
rf_status rf_cl_row_groups(rf_device *dev, cl_kernel kernel, const char *family, size_t width, size_t rows,
                           size_t local[2], size_t global[2], size_t *scratch_bytes) {
    char key[64];
    snprintf(key, sizeof key, "%s.lanes", family);
    int want_lanes = rf_cl_tuned(dev, key, dev->info.is_gpu ? 32 : 8);
    snprintf(key, sizeof key, "%s.group", family);
    int want_group = rf_cl_tuned(dev, key, RF_CL_GROUP);
    size_t lanes = 1, group;
    while ((int)lanes * 2 <= want_lanes && lanes < width) lanes *= 2;
    RF_TRY(rf_cl_group_size(dev, kernel, want_group > (int)lanes ? (size_t)want_group : lanes, &group));
    local[0] = lanes < group ? lanes : group;
    local[1] = group / local[0];
    global[0] = local[0];
    global[1] = rows;
    *scratch_bytes = 2 * group * sizeof(float);
    return RF_OK;
}

rf_status rf_cl_grid2(rf_device *dev, cl_kernel kernel, size_t width, size_t rows, size_t local[2], size_t global[2]) {
    size_t group, w = 1;
    RF_TRY(rf_cl_group_size(dev, kernel, RF_CL_GROUP, &group));
    while (w < width && w < group) w *= 2;
    /* Narrower while rounding the row up to whole groups would idle over an
     * eighth of the items (a row of 320 in groups of 256 runs 512 items): 64
     * items fit it exactly. A GPU's warp (32) is the floor. */
    while (w > 32 && rf_round_up(width, w) - width > width / 8) w /= 2;
    local[0] = w;
    local[1] = group / w;
    global[0] = width;
    global[1] = rows;
    return RF_OK;
}
