/* oclgrind 21.10 with OCLGRIND_UNINITIALIZED=1: the checker keeps a buffer's
 * shadow (which bytes are initialised) by buffer number, and does not drop it
 * when the buffer is released. oclgrind gives a new buffer a released one's
 * number, so the new buffer inherits the old shadow, sized for the old
 * buffer: stores beyond the old size are not recorded and loads there read as
 * uninitialised. Here b (64 bytes) reuses a's number (16 bytes): `fill`
 * writes all of b, yet `copy` reports its words 4..15 as uninitialised.
 * Build and run as fill_buffer.c. */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
static const char *src =
    "__kernel void fill(__global float *o) { size_t i = get_global_id(0); o[i] = (float)i; }\n"
    "__kernel void copy(__global float *o, __global const float *i) { size_t g = get_global_id(0); o[g] = i[g]; }\n";
int main(void) {
    cl_platform_id p; cl_device_id d; cl_int e;
    clGetPlatformIDs(1, &p, NULL); clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL);
    cl_context c = clCreateContext(NULL, 1, &d, NULL, NULL, &e);
    cl_command_queue q = clCreateCommandQueue(c, d, 0, &e);
    cl_program pr = clCreateProgramWithSource(c, 1, &src, NULL, &e); clBuildProgram(pr, 1, &d, "", NULL, NULL);
    cl_kernel fill = clCreateKernel(pr, "fill", &e), copy = clCreateKernel(pr, "copy", &e);
    size_t n4 = 4, n16 = 16;
    cl_mem a = clCreateBuffer(c, CL_MEM_READ_WRITE, 16, NULL, &e);
    clSetKernelArg(fill, 0, sizeof a, &a);
    clEnqueueNDRangeKernel(q, fill, 1, NULL, &n4, NULL, 0, NULL, NULL); /* a's shadow: 16 bytes, written */
    clFinish(q);
    clReleaseMemObject(a);
    float h[16] = {0};
    cl_mem b = clCreateBuffer(c, CL_MEM_READ_WRITE, 64, NULL, &e); /* a's number again */
    cl_mem out = clCreateBuffer(c, CL_MEM_READ_WRITE, 64, NULL, &e);
    clEnqueueWriteBuffer(q, out, CL_TRUE, 0, 64, h, 0, NULL, NULL);
    clSetKernelArg(fill, 0, sizeof b, &b);
    clEnqueueNDRangeKernel(q, fill, 1, NULL, &n16, NULL, 0, NULL, NULL); /* writes all 16 words of b */
    clSetKernelArg(copy, 0, sizeof out, &out); clSetKernelArg(copy, 1, sizeof b, &b);
    clEnqueueNDRangeKernel(q, copy, 1, NULL, &n16, NULL, 0, NULL, NULL);
    clEnqueueReadBuffer(q, out, CL_TRUE, 0, 64, h, 0, NULL, NULL);
    printf("out[15] = %g (b was written whole)\n", h[15]);
    return 0;
}
