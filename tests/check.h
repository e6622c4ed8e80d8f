/* A failure counter and CHECK(cond, printf-style message) for the small
 * standalone test programs (test_threads, tests/install/consumer.c, which
 * is also compiled against an installed tree with nothing but this file
 * beside it). */
#ifndef SWIGLU_TESTS_CHECK_H
#define SWIGLU_TESTS_CHECK_H

#include <stdio.h>

static int failures;
#define CHECK(cond, ...)                      \
  do {                                        \
    if (!(cond)) {                            \
      fprintf(stderr, "FAIL: " __VA_ARGS__); \
      fputc('\n', stderr);                    \
      ++failures;                             \
    }                                         \
  } while (0)

#endif
