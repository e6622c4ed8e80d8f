/*
 * Backend registry: resolves a backend name to an interface, loading GPU
 * backends as modules (libswiglu-NAME.so) with dlopen. Modules stay loaded for
 * the life of the process: unloading while another context still uses the
 * module would be a use-after-free, and the saving is nil.
 *
 * Search order for a module: each directory of SWIGLU_BACKEND_PATH (colon
 * separated), the directory libswiglu itself was loaded from, then the
 * dynamic linker's own search path. Every refusal is logged (sg_log) and
 * returned to the caller as a message.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

#define SG_MAX_MODULES 16

typedef struct sg_module {
  char name[40];
  const swiglu_backend_iface *iface;
  int score;
  char refusal[SG_MSG_CAP]; /* why score is 0 */
} sg_module;

static pthread_mutex_t g_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static sg_module g_modules[SG_MAX_MODULES];
static int g_module_count;

/* GPU module names `auto` probes, best first when scores tie. */
static const char *const k_auto_modules[] = {"cuda", "hip"};

/* Backends linked into libswiglu (SWIGLU_STATIC_BACKENDS): found before any
 * file is looked for. */
typedef struct sg_static_backend {
  const char *name;
  swiglu_backend_init_fn init;
  swiglu_backend_score_fn score;
} sg_static_backend;
#ifdef SWIGLU_STATIC_CUDA
const swiglu_backend_iface *swiglu_backend_init_cuda(void);
int swiglu_backend_score_cuda(char *reason, size_t reason_cap);
#endif
static const sg_static_backend k_static_backends[] = {
#ifdef SWIGLU_STATIC_CUDA
    {"cuda", swiglu_backend_init_cuda, swiglu_backend_score_cuda},
#endif
    {NULL, NULL, NULL}};

static int valid_module_name(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 32) return 0;
  for (size_t i = 0; i < n; ++i) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return 0;
  }
  return 1;
}

static void self_directory(char *dir, size_t cap) {
  Dl_info info;
  dir[0] = '\0';
  if (dladdr((void *)&sg_registry_find, &info) && info.dli_fname) {
    const char *slash = strrchr(info.dli_fname, '/');
    if (slash && (size_t)(slash - info.dli_fname) < cap) {
      memcpy(dir, info.dli_fname, (size_t)(slash - info.dli_fname));
      dir[slash - info.dli_fname] = '\0';
    }
  }
}

/* dlopen()s path; on failure logs why and appends path to tried. */
static void *try_dlopen(const char *name, const char *path, char *tried, size_t tried_cap) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h) return h;
  const char *err = dlerror();
  sg_log("backend '%s': %s", name, err ? err : "not found");
  const size_t n = strlen(tried);
  snprintf(tried + n, tried_cap - n, "%s ", path);
  return NULL;
}

static void *open_module_file(const char *name, char *msg, size_t msg_cap) {
  char file[64], path[4096], tried[SG_MSG_CAP] = "";
  /* Paths longer than the message are cut in the message only. */
  snprintf(file, sizeof file, "libswiglu-%s.so", name);
  void *h = NULL;
  const char *env = getenv("SWIGLU_BACKEND_PATH");
  for (const char *p = env ? env : ""; *p && !h;) {
    size_t len = strcspn(p, ":");
    if (len > 0 && len < sizeof path - sizeof file - 1) {
      snprintf(path, sizeof path, "%.*s/%s", (int)len, p, file);
      h = try_dlopen(name, path, tried, sizeof tried);
    }
    p += len + (p[len] == ':');
  }
  char dir[2048];
  self_directory(dir, sizeof dir);
  if (!h && dir[0]) {
    snprintf(path, sizeof path, "%s/%s", dir, file);
    h = try_dlopen(name, path, tried, sizeof tried);
  }
  if (!h) h = try_dlopen(name, file, tried, sizeof tried); /* the dynamic linker's own path */
  if (!h)
    snprintf(msg, msg_cap, "backend '%s': module %s not found or not loadable (tried %s)", name,
             file, tried);
  return h;
}

/* Loads (or finds already loaded) module `name`; *score is 0 when it refuses. */
static swiglu_status load_module(const char *name, const swiglu_backend_iface **iface, int *score,
                                 char *msg, size_t msg_cap) {
  for (int i = 0; i < g_module_count; ++i) {
    if (strcmp(g_modules[i].name, name) == 0) {
      *iface = g_modules[i].iface;
      *score = g_modules[i].score;
      if (*score == 0) {
        snprintf(msg, msg_cap, "%s", g_modules[i].refusal);
        sg_log("%s (module already loaded)", g_modules[i].refusal);
      } else {
        sg_log("backend '%s': usable, score %d (module already loaded)", name, *score);
      }
      return SWIGLU_SUCCESS;
    }
  }
  void *h = NULL;
  swiglu_backend_init_fn init = NULL;
  swiglu_backend_score_fn score_fn = NULL;
  for (const sg_static_backend *sb = k_static_backends; sb->name; ++sb)
    if (strcmp(sb->name, name) == 0) {
      init = sb->init, score_fn = sb->score;
      sg_log("backend '%s': linked into libswiglu", name);
    }
  if (!init) {
    h = open_module_file(name, msg, msg_cap);
    if (!h) return SWIGLU_ERROR_BACKEND_UNAVAILABLE;
    init = (swiglu_backend_init_fn)dlsym(h, SWIGLU_BACKEND_INIT_SYMBOL);
    score_fn = (swiglu_backend_score_fn)dlsym(h, SWIGLU_BACKEND_SCORE_SYMBOL);
  }
  if (!init || !score_fn) {
    snprintf(msg, msg_cap, "backend '%s': module lacks the symbol %s", name,
             !init ? SWIGLU_BACKEND_INIT_SYMBOL : SWIGLU_BACKEND_SCORE_SYMBOL);
    sg_log("%s", msg);
    if (h) dlclose(h);
    return SWIGLU_ERROR_BACKEND_UNAVAILABLE;
  }
  const swiglu_backend_iface *bi = init();
  if (!bi || bi->abi_version != SWIGLU_BACKEND_ABI_VERSION ||
      bi->struct_size < sizeof(swiglu_backend_iface)) {
    snprintf(msg, msg_cap, "backend '%s': ABI mismatch (module has version %u, size %u; core needs %u, %zu)",
             name, bi ? bi->abi_version : 0u, bi ? bi->struct_size : 0u,
             SWIGLU_BACKEND_ABI_VERSION, sizeof(swiglu_backend_iface));
    sg_log("%s", msg);
    if (h) dlclose(h);
    return SWIGLU_ERROR_BACKEND_UNAVAILABLE;
  }
  char reason[SG_MSG_CAP] = "";
  int s = score_fn(reason, sizeof reason);
  if (s <= 0) {
    snprintf(msg, msg_cap, "backend '%s': no usable device (%s)", name,
             reason[0] ? reason : "module gave no reason");
    sg_log("%s", msg);
  } else {
    sg_log("backend '%s': usable, score %d", name, s);
  }
  if (g_module_count < SG_MAX_MODULES) {
    sg_module *m = &g_modules[g_module_count++];
    snprintf(m->name, sizeof m->name, "%s", name);
    m->iface = bi;
    m->score = s > 0 ? s : 0;
    snprintf(m->refusal, sizeof m->refusal, "%s", s > 0 ? "" : msg);
  }
  *iface = bi;
  *score = s > 0 ? s : 0;
  return SWIGLU_SUCCESS;
}

static swiglu_status find_locked(const char *name, const swiglu_backend_iface **out, char *msg,
                                 size_t msg_cap) {
  if (name == NULL || strcmp(name, "auto") == 0) {
    const swiglu_backend_iface *best = swiglu_cpu_backend();
    int best_score = 1;
    char why[SG_MSG_CAP];
    for (size_t i = 0; i < sizeof k_auto_modules / sizeof *k_auto_modules; ++i) {
      const swiglu_backend_iface *bi;
      int score = 0;
      if (load_module(k_auto_modules[i], &bi, &score, why, sizeof why) == SWIGLU_SUCCESS &&
          score > best_score) {
        best = bi;
        best_score = score;
      }
    }
    sg_log("auto: chose backend '%s'", best->name);
    *out = best;
    return SWIGLU_SUCCESS;
  }
  if (strcmp(name, "cpu") == 0) {
    *out = swiglu_cpu_backend();
    return SWIGLU_SUCCESS;
  }
  if (!valid_module_name(name)) {
    snprintf(msg, msg_cap, "backend name '%.64s' is not valid (1-32 of [a-z0-9_-])", name);
    return SWIGLU_ERROR_INVALID_ARGUMENT;
  }
  int score = 0;
  swiglu_status st = load_module(name, out, &score, msg, msg_cap);
  if (st != SWIGLU_SUCCESS) return st;
  if (score <= 0) {
    /* load_module already wrote why. */
    return SWIGLU_ERROR_BACKEND_UNAVAILABLE;
  }
  return SWIGLU_SUCCESS;
}

swiglu_status sg_registry_find(const char *name, const swiglu_backend_iface **out, char *msg,
                               size_t msg_cap) {
  pthread_mutex_lock(&g_registry_lock);
  swiglu_status st = find_locked(name, out, msg, msg_cap);
  pthread_mutex_unlock(&g_registry_lock);
  return st;
}
