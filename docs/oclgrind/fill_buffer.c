/* oclgrind 21.10 with OCLGRIND_UNINITIALIZED=1: a buffer set by
 * clEnqueueFillBuffer still counts as uninitialised. Build and run:
 *   gcc fill_buffer.c -o fill_buffer -lOpenCL
 *   OCL_ICD_VENDORS=DIR OCLGRIND_UNINITIALIZED=1 ./fill_buffer
 * (DIR holds one .icd file naming liboclgrind-rt-icd.so). Reports
 * "Uninitialized value written to global memory" for each of b's 4 words. */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
static const char *src =
    "__kernel void copy(__global float *o, __global const float *i) { size_t g = get_global_id(0); o[g] = i[g]; }\n";
int main(void) {
    cl_platform_id p;
    cl_device_id d;
    cl_int e;
    clGetPlatformIDs(1, &p, NULL);
    clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL);
    cl_context c = clCreateContext(NULL, 1, &d, NULL, NULL, &e);
    cl_command_queue q = clCreateCommandQueue(c, d, 0, &e);
    cl_program pr = clCreateProgramWithSource(c, 1, &src, NULL, &e);
    clBuildProgram(pr, 1, &d, "", NULL, NULL);
    cl_kernel k = clCreateKernel(pr, "copy", &e);
    float zero = 0.0f;
    cl_mem a = clCreateBuffer(c, CL_MEM_READ_WRITE, 16, NULL, &e), b = clCreateBuffer(c, CL_MEM_READ_WRITE, 16, NULL, &e);
    clEnqueueFillBuffer(q, a, &zero, 4, 0, 16, 0, NULL, NULL); /* a = 0 */
    size_t g = 4;
    clSetKernelArg(k, 0, sizeof b, &b);
    clSetKernelArg(k, 1, sizeof a, &a);
    clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL); /* b = a */
    clFinish(q);
    printf("done\n");
    return 0;
}
