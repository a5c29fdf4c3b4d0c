/* What buffer_reuse.c and map_write.c share: the first device of the first
 * platform (oclgrind, with OCL_ICD_VENDORS naming only it), an in-order
 * queue and the program `src`, built; a copy run and read back. */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>

typedef struct og_setup {
    cl_context context;
    cl_command_queue queue;
    cl_program program;
} og_setup;

static og_setup og_open(const char *src) {
    cl_platform_id p;
    cl_device_id d;
    cl_int e;
    og_setup s;
    clGetPlatformIDs(1, &p, NULL);
    clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL);
    s.context = clCreateContext(NULL, 1, &d, NULL, NULL, &e);
    s.queue = clCreateCommandQueue(s.context, d, 0, &e);
    s.program = clCreateProgramWithSource(s.context, 1, &src, NULL, &e);
    clBuildProgram(s.program, 1, &d, "", NULL, NULL);
    return s;
}

/* out = in (n floats) by the kernel `copy`, then out downloaded into h. */
static void og_copy(og_setup s, cl_kernel copy, cl_mem out, cl_mem in, size_t n, float *h) {
    clSetKernelArg(copy, 0, sizeof out, &out);
    clSetKernelArg(copy, 1, sizeof in, &in);
    clEnqueueNDRangeKernel(s.queue, copy, 1, NULL, &n, NULL, 0, NULL, NULL);
    clEnqueueReadBuffer(s.queue, out, CL_TRUE, 0, n * sizeof *h, h, 0, NULL, NULL);
}
