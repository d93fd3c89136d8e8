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

# The bridge library through pkg-config, where it was built.
if [ -f "$scratch/prefix/lib/pkgconfig/sluice-nats.pc" ]; then
  cat >"$scratch/nats_user.cpp" <<'CPP'
#include <sluice/nats/inbound.hpp>
int main() { return sluice::nats::default_durable("orders.eu") == "sluice-orders_eu" ? 0 : 1; }
CPP
  # shellcheck disable=SC2046
  c++ "$scratch/nats_user.cpp" -o "$scratch/pkgconfig-nats-user" $(pkg-config --cflags --libs sluice-nats)
  "$scratch/pkgconfig-nats-user"
fi
