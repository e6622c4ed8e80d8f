/* The one log sink: a user callback, else stderr when SWIGLU_LOG=1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

static swiglu_log_fn g_log_fn;
static void *g_log_user;

void swiglu_set_log_callback(swiglu_log_fn fn, void *user_data) {
  g_log_fn = fn;
  g_log_user = user_data;
}

void sg_log(const char *fmt, ...) {
  swiglu_log_fn fn = g_log_fn;
  const char *env = NULL;
  if (!fn) {
    env = getenv("SWIGLU_LOG");
    if (!env || strcmp(env, "0") == 0 || env[0] == '\0') return;
  }
  char line[SG_MSG_CAP];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (fn)
    fn(line, g_log_user);
  else
    fprintf(stderr, "swiglu: %s\n", line);
}
