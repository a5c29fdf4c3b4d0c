/* Internal: the OpenCL backend's context, the accessors that get it and a
 * buffer's cl_mem out of the opaque rf_device / rf_buffer (only files under
 * src/device/opencl/ see OpenCL types), the registration of each op family
 * (device/op_table.h), and the helpers every OpenCL op uses to get a kernel,
 * set its arguments, launch it and have it profiled. */
#ifndef RF_CL_BACKEND_H
#define RF_CL_BACKEND_H

#include <CL/cl.h>
#include "device/block_cache.h"
#include "device/device_impl.h"
#include "device/opencl/cl_tune.h"
#include "device/thread_pool.h"

#define RF_CL_MAX_PROGRAMS 64
#define RF_CL_MAX_KERNELS 16
#define RF_CL_MAX_PENDING 1024

typedef struct rf_cl_program {
    char file[64];
    char options[512];
    cl_program program;
    int nkernels;
    struct { char name[64]; cl_kernel kernel; } kernels[RF_CL_MAX_KERNELS];
} rf_cl_program;

typedef struct rf_cl_context {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;     /* in order, profiling enabled */
    int nprograms;
    rf_cl_program programs[RF_CL_MAX_PROGRAMS];
    /* Events not yet folded into the profile table. */
    int npending;
    struct { cl_event event; char op[64]; } pending[RF_CL_MAX_PENDING];
    /* Tuned kernel parameters (cl_tune.h): the table file's, and overrides. */
    rf_cl_tuning tuning;
    /* A device of CPU type that is not a simulator: its buffers are host
     * memory and a work-group runs on one core (gemm.c, rf_cl_attn_shape). */
    int host_cpu;
    /* The float vector width of the CPU-shape attention kernels (-DVW): 16
     * where the device's native float width is 16 or more (AVX-512), else 8
     * (cl/lsh_attention.cl, "the CPU shape"). */
    int vector_width;
    /* host_cpu only: released buffers kept for reuse, as the cpu backend's
     * (device/block_cache.h: fresh host memory costs a page fault per 4 KiB). */
    rf_block_cache reuse;
    /* host_cpu only: the threads of the host GEMM (gemm.c), which sleep
     * between calls where OpenMP's would spin against PoCL's workers. */
    rf_thread_pool *gemm_pool;
    /* Simulator only: buffers released by the library, kept until close so
     * that oclgrind never reuses their numbers (docs/oclgrind.md, artefact 4). */
    int nretired, retired_cap;
    cl_mem *retired;
} rf_cl_context;

/* An OpenCL device's impl is its rf_cl_context; a buffer's is its cl_mem. */
static inline rf_cl_context *rf_cl_ctx(const rf_device *dev) { return (rf_cl_context *)dev->impl; }
static inline cl_mem rf_cl_mem(const rf_buffer *buf) { return (cl_mem)buf->impl; }

#define RF_CL_DECLARE_REGISTER(family) void rf_cl_##family##_register(rf_op_table *ops);
RF_OP_FAMILIES(RF_CL_DECLARE_REGISTER)
#undef RF_CL_DECLARE_REGISTER

/* The name of an OpenCL error code ("CL_OUT_OF_RESOURCES"). */
const char *rf_cl_error_name(cl_int err);
/* Record "<what>: <CL error name> (<code>)" and return the matching status. */
rf_status rf_cl_fail(cl_int err, const char *what);

/* The kernel `kernel` of program `file` (a cl/ file name) built with
 * `options` (defines; "-cl-std=CL1.2" is always added). Programs are built
 * once per device and option string, and cached on disk. */
rf_status rf_cl_kernel(rf_device *dev, const char *file, const char *options,
                       const char *kernel, cl_kernel *out);

/* Kernel arguments: RF_ARG(x) passes the value x (a cl_mem, an int, ...),
 * RF_LOCAL(bytes) a __local array. */
typedef struct rf_cl_arg { size_t size; const void *value; } rf_cl_arg;
#define RF_ARG(x) ((rf_cl_arg){sizeof(x), &(x)})
#define RF_LOCAL(bytes) ((rf_cl_arg){(bytes), NULL})
/* RF_MEM(t) passes tensor t's cl_mem (a compound literal holds the value
 * for the duration of the call). */
#define RF_MEM(t) ((rf_cl_arg){sizeof(cl_mem), &(cl_mem){rf_cl_mem((t)->buf)}})

/* Set the arguments and enqueue. `local` may be NULL (the runtime chooses);
 * otherwise the global size is rounded up to a multiple of it, so kernels
 * guard their tail. The launch is recorded in the profile under `op`. */
rf_status rf_cl_launch(rf_device *dev, cl_kernel kernel, const char *op, int dims,
                       const size_t *global, const size_t *local, int nargs, const rf_cl_arg *args);
#define RF_CL_LAUNCH(dev, kernel, op, dims, global, local, ...)                             \
    rf_cl_launch(dev, kernel, op, dims, global, local,                                      \
                 (int)(sizeof((rf_cl_arg[]){__VA_ARGS__}) / sizeof(rf_cl_arg)),            \
                 (rf_cl_arg[]){__VA_ARGS__})

/* Keep `event` (which this takes ownership of) for the profile under `op`. */
rf_status rf_cl_record(rf_device *dev, cl_event event, const char *op);

/* The work-group size the host asks for by default (elementwise kernels,
 * one work-item per element; reductions, one group per row): wide enough to
 * fill a GPU's SIMD units, and a group's float scratch is then ≤ 1 KiB of
 * local memory, well under OpenCL's 32 KiB minimum. rf_cl_group_size lowers
 * it to what the kernel and device allow. */
#define RF_CL_GROUP 256

/* Apply $RF_CL_LIMITS (cl_limits.c) to `info`: lower its work-group size and
 * local memory (checking the preferred multiple fits them). */
rf_status rf_cl_limits_apply(rf_device_info *info);
/* The profile names RF_CL_LIMITS takes, for messages. */
const char *rf_cl_limits_profiles(void);

/* How the chunk attention kernels (local, full, LSH) and the row kernels
 * (LayerNorm, bias_grad, activations, cross-entropy) are shaped on a device:
 * RF_CL_SHAPE_GPU, work-group tiles in local memory with bounded private
 * memory, rows × lanes with barrier sums (docs/portability.md), on every
 * device but RF_CL_SHAPE_CPU's:
 * devices of CPU type (host_cpu) planned without RF_CL_LIMITS, where a
 * work-group runs as a loop on one core and each work-item takes whole rows
 * with vector types (README "Speed"). RF_CL_ATTN=gpu|cpu forces one (tests
 * run both on PoCL). */
typedef enum { RF_CL_SHAPE_GPU, RF_CL_SHAPE_CPU } rf_cl_shape;
rf_status rf_cl_attn_shape(const rf_device *dev, rf_cl_shape *shape);

/* The largest power-of-two work-group size <= want that the kernel and
 * device (after RF_CL_LIMITS) allow. */
rf_status rf_cl_group_size(rf_device *dev, cl_kernel kernel, size_t want, size_t *out);

/* A 2-D grid over `rows` rows of `width` elements, one work-item each
 * (item (c, r) = get_global_id(0), get_global_id(1)): the kernel finds its
 * element without a 64-bit division (slow on CPUs; emulated on GPUs), and
 * neighbouring items of a row read neighbouring words. local = {the row's
 * power of two, capped by the group and narrowed while rounding the row up
 * idles over an eighth of it; then rows to fill the group}. */
rf_status rf_cl_grid2(rf_device *dev, cl_kernel kernel, size_t width, size_t rows, size_t local[2], size_t global[2]);

/* The launch of a row kernel (reduce.cl's row reductions) over `rows` rows
 * of `width`: local = {W lanes, G rows}, global = {W, rows} (rf_cl_launch
 * rounds the rows up to whole groups), and the bytes of its scratch, 2·W·G
 * floats. W = "<family>.lanes", G·W = "<family>.group" (rf_cl_tuned; their
 * defaults and the measurements behind them: cl_program.c). */
rf_status rf_cl_row_groups(rf_device *dev, cl_kernel kernel, const char *family, size_t width, size_t rows,
                           size_t local[2], size_t global[2], size_t *scratch_bytes);

static inline size_t rf_round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* The folder of the kernel cache and of the tuning tables:
 * $XDG_CACHE_HOME/reformer-cl, else ~/.cache/reformer-cl. */
void rf_cl_cache_dir(char *out, size_t n);
/* Create it (0700) when missing. */
rf_status rf_cl_cache_mkdir(const char *dir);

/* Release every program and kernel of a context (on close). */
void rf_cl_programs_release(rf_cl_context *cl);

#endif
