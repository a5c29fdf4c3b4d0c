/* Poison: put first on the include path of the -DRF_OPENCL=OFF build, so
 * any OpenCL header reached from a cpu-only build is an error. */
#error "OpenCL header in a cpu-only build"
