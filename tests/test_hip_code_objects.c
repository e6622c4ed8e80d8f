/*
 * Opens libswiglu-hip.so and checks that its offload bundle holds a non-empty
 * AMDGPU code object (an ELF for EM_AMDGPU) for every configured target, so a
 * build that silently produced host-only code cannot pass.
 *
 *   test_hip_code_objects MODULE TARGET...
 *
 * Clang offload bundle layout: "__CLANG_OFFLOAD_BUNDLE__", uint64 entry
 * count, then per entry uint64 offset (from the bundle start), uint64 size,
 * uint64 triple length, triple ("hipv4-amdgcn-amd-amdhsa--gfx90a[:features]").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rd64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODULE TARGET...\n", argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    printf("FAIL: cannot open %s\n", argv[1]);
    return 1;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *d = malloc((size_t)n);
  if (fread(d, 1, (size_t)n, f) != (size_t)n) return 1;
  fclose(f);
  static const char magic[] = "__CLANG_OFFLOAD_BUNDLE__";
  int found[64] = {0};
  int bundles = 0;
  for (long i = 0; i + 24 + 8 <= n; ++i) {
    if (memcmp(d + i, magic, 24) != 0) continue;
    ++bundles;
    const unsigned char *b = d + i;
    uint64_t count = rd64(b + 24);
    const unsigned char *e = b + 32;
    for (uint64_t k = 0; k < count && e + 24 <= d + n; ++k) {
      uint64_t off = rd64(e), size = rd64(e + 8), tlen = rd64(e + 16);
      if (e + 24 + tlen > d + n) break;
      char triple[256] = {0};
      memcpy(triple, e + 24, tlen < 255 ? tlen : 255);
      e += 24 + tlen;
      const unsigned char *obj = b + off;
      int is_amdgpu_elf = size > 20 && obj + 20 <= d + n && memcmp(obj, "\x7f" "ELF", 4) == 0 &&
                          (obj[18] | (obj[19] << 8)) == 0xE0; /* e_machine EM_AMDGPU */
      printf("bundle entry: %-48s %8llu bytes%s\n", triple, (unsigned long long)size,
             is_amdgpu_elf ? " (AMDGPU ELF)" : "");
      for (int t = 2; t < argc && t < 66; ++t) {
        char want[80];
        snprintf(want, sizeof want, "amdgcn-amd-amdhsa--%s", argv[t]);
        const char *hit = strstr(triple, want);
        if (hit && (hit[strlen(want)] == '\0' || hit[strlen(want)] == ':') && is_amdgpu_elf)
          found[t - 2] = 1;
      }
    }
  }
  int failed = 0;
  for (int t = 2; t < argc && t < 66; ++t) {
    printf("%s %s\n", found[t - 2] ? "ok  " : "FAIL", argv[t]);
    failed += !found[t - 2];
  }
  printf("%d bundles; %d passed, %d failed\n", bundles, argc - 2 - failed, failed);
  free(d);
  return failed || !bundles ? 1 : 0;
}
