#!/usr/bin/env bash
# Installs the build tree into a fresh prefix, builds tests/install/consumer.c
# against the installed files only (through find_package or pkg-config), and
# runs it with no swiglu variables in the environment.
#
# usage: check.sh cmake|pkgconfig BUILD_DIR WORK_DIR CMAKE CC "MODULES" ["LINKED"]
# LINKED: backends linked into libswiglu (no file), which the consumer checks
# by name as it does the modules.
# exit 77 (CTest: skipped) when pkg-config is asked for and missing.
set -euo pipefail
mode=$1 build=$2 work=$3 cmake=$4 cc=$5 modules=$6 linked=${7:-}
src=$(cd "$(dirname "$0")" && pwd)
unset SWIGLU_BACKEND_PATH SWIGLU_BACKEND LD_LIBRARY_PATH
if [ "$mode" = pkgconfig ] && ! command -v pkg-config >/dev/null 2>&1; then
  echo "pkg-config not found: the .pc file is not checked (SKIPPED)"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log"
lib=$(find "$prefix" -name 'libswiglu.so' -o -name 'libswiglu.a' | head -n 1)
[ -n "$lib" ] || { echo "FAIL: no libswiglu under $prefix"; exit 1; }
libdir=$(dirname "$lib")
origin=$libdir
case $lib in *.a) origin=static ;; esac
for m in $modules; do
  [ -f "$libdir/libswiglu-$m.so" ] || { echo "FAIL: module $m not installed in $libdir"; exit 1; }
done
case $mode in
  cmake)
    "$cmake" -S "$src" -B "$work/consumer" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
      -DEXPECT_MODULES="$(echo $modules | tr ' ' ';')" >"$work/configure.log"
    "$cmake" --build "$work/consumer" >"$work/build.log"
    exe=$work/consumer/consumer
    ;;
  pkgconfig)
    export PKG_CONFIG_PATH=$libdir/pkgconfig
    pc_libdir=$(pkg-config --variable=libdir swiglu)
    [ "$(cd "$pc_libdir" && pwd -P)" = "$(cd "$libdir" && pwd -P)" ] ||
      { echo "FAIL: swiglu.pc's libdir $pc_libdir is not $libdir"; exit 1; }
    exe=$work/consumer-pc
    static=()   # a static libswiglu brings its private libraries (Libs.private)
    [ "$origin" = static ] && static=(--static)
    # shellcheck disable=SC2046
    "$cc" -std=c11 -o "$exe" "$src/consumer.c" $(pkg-config --cflags swiglu) \
      $(pkg-config --libs "${static[@]}" swiglu) -lm -ldl -Wl,-rpath,"$pc_libdir"
    ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
# shellcheck disable=SC2086
"$exe" "$origin" $modules $linked
