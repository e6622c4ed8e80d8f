#!/usr/bin/env bash
# Installs what the build and the test suite need and is missing: a C
# toolchain, CMake, pkg-config (the install test), OpenMP (GCC's libgomp),
# oneDNN (the independent CPU reference), hipcc with the HIP runtime and
# ROCm device libraries (to build libswiglu-hip.so), and clang with its
# OpenMP and sanitizer runtimes (scripts/test.sh's sanitizer build).
# Debian/Ubuntu (apt-get); run as root or with sudo.
# The CUDA toolkit is not a Debian package here: libswiglu-cuda.so is built
# whenever nvcc is already installed.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in build-essential cmake pkgconf libdnnl-dev hipcc libamdhip64-dev rocm-device-libs \
  clang libomp-dev libclang-rt-dev; do
  have_pkg "$pkg" || need+=("$pkg")
done
if [ "${#need[@]}" -eq 0 ]; then
  echo "setup: everything needed is installed"
  exit 0
fi
echo "setup: installing ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${need[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "setup: done"
