/* oclgrind 21.10 with OCLGRIND_UNINITIALIZED=1: a host write that covers only
 * part of a buffer (here a[2..3]) does not mark those bytes initialised.
 * Build and run as fill_buffer.c; reports both words the kernel copies. */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
static const char *src =
"__kernel void copy2(__global float *o, __global const float *i) { size_t g = get_global_id(0); o[g] = i[2 + g]; }\n";
int main(void) {
  cl_platform_id p; cl_device_id d; cl_int e;
  clGetPlatformIDs(1, &p, NULL); clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL);
  cl_context c = clCreateContext(NULL, 1, &d, NULL, NULL, &e);
  cl_command_queue q = clCreateCommandQueue(c, d, 0, &e);
  cl_program pr = clCreateProgramWithSource(c, 1, &src, NULL, &e); clBuildProgram(pr, 1, &d, "", NULL, NULL);
  cl_kernel k = clCreateKernel(pr, "copy2", &e);
  float h[2] = {1, 2};
  cl_mem a = clCreateBuffer(c, CL_MEM_READ_WRITE, 16, NULL, &e), b = clCreateBuffer(c, CL_MEM_READ_WRITE, 8, NULL, &e);
  clEnqueueWriteBuffer(q, a, CL_TRUE, 8, 8, h, 0, NULL, NULL); /* a[2..3] = h */
  size_t g = 2;
  clSetKernelArg(k, 0, sizeof b, &b); clSetKernelArg(k, 1, sizeof a, &a);
  clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL);
  clFinish(q); printf("done\n"); return 0;
}
