/* The kernel sources of cl/, embedded at build time by tools/embed_cl.cmake. */
#ifndef RF_CL_SOURCES_H
#define RF_CL_SOURCES_H

typedef struct rf_cl_source {
    const char *name;   /* file name in cl/, e.g. "gemm.cl" */
    const char *text;
} rf_cl_source;

extern const rf_cl_source rf_cl_sources[]; /* ends with {NULL, NULL} */

#endif
