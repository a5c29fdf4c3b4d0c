/* oclgrind 21.10 with OCLGRIND_UNINITIALIZED=1: values the host writes
 * through a mapping made with CL_MAP_READ | CL_MAP_WRITE stay
 * "uninitialised" after the unmap (a CL_MAP_WRITE-only mapping marks its
 * range initialised; a read-write one is not looked at). Here a fresh buffer
 * is written whole through such a mapping, and `copy` reports each of the 4
 * words it reads. Build and run as fill_buffer.c (gcc map_write.c -lOpenCL). */
#include "minimal.h"
static const char *src =
    "__kernel void copy(__global float *o, __global const float *i) { size_t g = get_global_id(0); o[g] = i[g]; }\n";
int main(void) {
    og_setup s = og_open(src);
    cl_int e;
    cl_kernel k = clCreateKernel(s.program, "copy", &e);
    float h[4] = {0};
    cl_mem a = clCreateBuffer(s.context, CL_MEM_READ_WRITE, 16, NULL, &e);
    cl_mem out = clCreateBuffer(s.context, CL_MEM_READ_WRITE, 16, NULL, &e);
    clEnqueueWriteBuffer(s.queue, out, CL_TRUE, 0, 16, h, 0, NULL, NULL);
    float *m = clEnqueueMapBuffer(s.queue, a, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, 16, 0, NULL, NULL, &e);
    for (int i = 0; i < 4; i++) m[i] = (float)i; /* a written whole by the host */
    clEnqueueUnmapMemObject(s.queue, a, m, 0, NULL, NULL);
    og_copy(s, k, out, a, 4, h);
    printf("out[3] = %g\n", h[3]);
    return 0;
}
