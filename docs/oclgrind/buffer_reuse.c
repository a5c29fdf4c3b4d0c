/* oclgrind 21.10 with OCLGRIND_UNINITIALIZED=1: the checker keeps a buffer's
 * shadow (which bytes are initialised) by buffer number, and does not drop it
 * when the buffer is released. oclgrind gives a new buffer a released one's
 * number, so the new buffer inherits the old shadow, sized for the old
 * buffer: stores beyond the old size are not recorded and loads there read as
 * uninitialised. Here b (64 bytes) reuses a's number (16 bytes): `fill`
 * writes all of b, yet `copy` reports its words 4..15 ("Uninitialized value
 * written to global memory"). Keep a (no release) and nothing is reported.
 * Build and run as fill_buffer.c (gcc buffer_reuse.c -lOpenCL). */
#include "minimal.h"
static const char *src =
    "__kernel void fill(__global float *o) { size_t i = get_global_id(0); o[i] = (float)i; }\n"
    "__kernel void copy(__global float *o, __global const float *i) { size_t g = get_global_id(0); o[g] = i[g]; }\n";
int main(void) {
    og_setup s = og_open(src);
    cl_int e;
    cl_kernel fill = clCreateKernel(s.program, "fill", &e), copy = clCreateKernel(s.program, "copy", &e);
    size_t n4 = 4, n16 = 16;
    float h[16] = {0};
    cl_mem a = clCreateBuffer(s.context, CL_MEM_READ_WRITE, 16, NULL, &e);
    clSetKernelArg(fill, 0, sizeof a, &a);
    clEnqueueNDRangeKernel(s.queue, fill, 1, NULL, &n4, NULL, 0, NULL, NULL); /* a's shadow: 16 bytes, written */
    clFinish(s.queue);
    clReleaseMemObject(a);
    cl_mem b = clCreateBuffer(s.context, CL_MEM_READ_WRITE, 64, NULL, &e); /* a's number again */
    cl_mem out = clCreateBuffer(s.context, CL_MEM_READ_WRITE, 64, NULL, &e);
    clEnqueueWriteBuffer(s.queue, out, CL_TRUE, 0, 64, h, 0, NULL, NULL);
    clSetKernelArg(fill, 0, sizeof b, &b);
    clEnqueueNDRangeKernel(s.queue, fill, 1, NULL, &n16, NULL, 0, NULL, NULL); /* writes all 16 words of b */
    og_copy(s, copy, out, b, n16, h);
    printf("out[15] = %g (b was written whole)\n", h[15]);
    return 0;
}
