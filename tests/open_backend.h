/* The suites' first step: a context on the backend named on the command
 * line. A backend this machine lacks (no module, no device, an ISA the CPU
 * lacks) is CTest's skip, exit 77; any other failure (a misspelt name or
 * SWIGLU_CPU_ISA) is a failure, exit 1. */
#ifndef SWIGLU_TESTS_OPEN_BACKEND_H
#define SWIGLU_TESTS_OPEN_BACKEND_H

#include <stdio.h>

#include "swiglu/swiglu.h"

/* 0 with *ctx set, else the exit code the suite returns */
static inline int t_open_backend(const char *backend, swiglu_context **ctx) {
  const swiglu_status st = swiglu_context_create(ctx, backend, 0);
  if (st == SWIGLU_ERROR_BACKEND_UNAVAILABLE) {
    printf("SKIPPED: backend '%s' unavailable here: %s\n", backend, swiglu_last_create_error());
    return 77;
  }
  if (st) {
    fprintf(stderr, "context: %s: %s\n", swiglu_status_string(st), swiglu_last_create_error());
    return 1;
  }
  return 0;
}

#endif
