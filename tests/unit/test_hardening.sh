#!/usr/bin/env bash
# The release hardening (L6), read back from the built programs: every daemon and
# lmpctl is linked with full RELRO (a GNU_RELRO segment and BIND_NOW), calls the
# stack protector's __stack_chk_fail, and, in an optimised build without sanitizers,
# glibc's checked functions (__*_chk) that _FORTIFY_SOURCE substitutes.
#   tests/unit/test_hardening.sh BUILD_DIR [BUILD_DIR...]
# Each build's CMakeCache.txt says its type, so the check fits the build it reads.
set -euo pipefail
(($# > 0)) || { echo "usage: $0 BUILD_DIR [BUILD_DIR...]" >&2; exit 2; }
failed=0
bad() { echo "FAIL: $*"; failed=1; }

check_build() {
  local build=$1 cache=$1/CMakeCache.txt
  [[ -f $cache ]] || { bad "$build: no CMakeCache.txt"; return; }
  local type sanitize fortify=no
  type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache")
  sanitize=$(sed -n 's/^LMP_SANITIZE:BOOL=//p' "$cache")
  if [[ ${type^^} =~ ^(RELEASE|RELWITHDEBINFO|MINSIZEREL)$ && ${sanitize^^} != ON ]]; then fortify=yes; fi
  local programs=("$build"/services/*/lmp-* "$build/tools/lmpctl")
  local n=0
  for p in "${programs[@]}"; do
    [[ -f $p && -x $p ]] || { bad "$p: not built"; continue; }
    n=$((n + 1))
    readelf -lW "$p" | grep -q GNU_RELRO || bad "$p: no GNU_RELRO segment"
    readelf -dW "$p" | grep -Eq '\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW' || bad "$p: not linked with -z now"
    # Imported from glibc, not defined: a sanitizer runtime defines its own _chk names.
    local imports
    imports=$(readelf --dyn-syms -W "$p" | awk '$7 == "UND" {print $8}')
    grep -q '^__stack_chk_fail@' <<<"$imports" || bad "$p: no stack protector (__stack_chk_fail)"
    if [[ $fortify == yes ]]; then
      grep -E '^__[a-z0-9_]+_chk@' <<<"$imports" | grep -vq '^__stack_chk_fail@' ||
        bad "$p: no _FORTIFY_SOURCE checked function (__*_chk) in a ${type} build"
    fi
  done
  echo "$build (${type:-no type}, sanitizers ${sanitize:-OFF}): $n programs checked for" \
       "relro, bind-now, stack protector$([[ $fortify == yes ]] && echo ", fortify")"
}

for b in "$@"; do check_build "$b"; done
exit "$failed"
