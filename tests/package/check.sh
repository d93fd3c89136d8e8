#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, then builds and runs small
# programs against it: the package user and the README example through
# find_package(Sluice), the package user again through pkg-config.
set -euo pipefail
build_dir="$1"
source_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cmake --install "$build_dir" --prefix "$scratch/prefix" >/dev/null
cmake -S "$source_dir" -B "$scratch/cmake-user" -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/cmake-user" >/dev/null
"$scratch/cmake-user/package_user"
"$scratch/cmake-user/readme_example"

export PKG_CONFIG_PATH="$scratch/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
c++ "$source_dir/main.cpp" -o "$scratch/pkgconfig-user" $(pkg-config --cflags --libs sluice)
"$scratch/pkgconfig-user"
