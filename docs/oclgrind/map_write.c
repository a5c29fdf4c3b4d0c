/* oclgrind 21.10 with OCLGRIND_UNINITIALIZED=1: values the host writes
 * through a mapping made with CL_MAP_READ | CL_MAP_WRITE stay
 * "uninitialised" after the unmap (a CL_MAP_WRITE-only mapping marks its
 * range initialised; a read-write one is not looked at). Here a fresh buffer
 * is written whole through such a mapping, and `copy` reports each of the 4
 * words it reads. Build and run as fill_buffer.c. */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
static const char *src =
    "__kernel void copy(__global float *o, __global const float *i) { size_t g = get_global_id(0); o[g] = i[g]; }\n";
int main(void) {
    cl_platform_id p; cl_device_id d; cl_int e;
    clGetPlatformIDs(1, &p, NULL); clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL);
    cl_context c = clCreateContext(NULL, 1, &d, NULL, NULL, &e);
    cl_command_queue q = clCreateCommandQueue(c, d, 0, &e);
    cl_program pr = clCreateProgramWithSource(c, 1, &src, NULL, &e); clBuildProgram(pr, 1, &d, "", NULL, NULL);
    cl_kernel k = clCreateKernel(pr, "copy", &e);
    float h[4] = {0};
    cl_mem a = clCreateBuffer(c, CL_MEM_READ_WRITE, 16, NULL, &e), out = clCreateBuffer(c, CL_MEM_READ_WRITE, 16, NULL, &e);
    clEnqueueWriteBuffer(q, out, CL_TRUE, 0, 16, h, 0, NULL, NULL);
    float *m = clEnqueueMapBuffer(q, a, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, 16, 0, NULL, NULL, &e);
    for (int i = 0; i < 4; i++) m[i] = (float)i; /* a written whole by the host */
    clEnqueueUnmapMemObject(q, a, m, 0, NULL, NULL);
    size_t n = 4;
    clSetKernelArg(k, 0, sizeof out, &out); clSetKernelArg(k, 1, sizeof a, &a);
    clEnqueueNDRangeKernel(q, k, 1, NULL, &n, NULL, 0, NULL, NULL);
    clEnqueueReadBuffer(q, out, CL_TRUE, 0, 16, h, 0, NULL, NULL);
    printf("out[3] = %g\n", h[3]);
    return 0;
}
