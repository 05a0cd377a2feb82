#!/usr/bin/env bash
# Makes a built Moddable SDK available to the tests and CI, outside this repository, and prints its path.
#
#   bash tools/moddable/sdk.sh            # prints the SDK's path (MODDABLE) on the last line of stdout
#
# - When $MODDABLE names an SDK whose Linux host tools are built (mcconfig, xsc, xsl, mcsim), that SDK is used.
# - Otherwise the SDK source archive beside the project (../shared/moddable/moddable-sdk-*.tar.xz, or the file named
#   by $MODDABLE_ARCHIVE) is unpacked into $UIOT_SDK_HOME (default ~/.cache/uiot-firmware) and its host tools are
#   built there with the SDK's own makefile (about 2.5 minutes on 2 cores). A finished build is reused.
#
# Nothing is written inside the project. The Debian packages the SDK's Linux guide lists (gcc, make, flex, bison,
# gperf, libncurses-dev, libgtk-3-dev) and Xvfb for the headless simulator are installed by .ci/run.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

built() { [ -x "$1/build/bin/lin/release/mcconfig" ] && [ -x "$1/build/bin/lin/release/xsl" ] && [ -x "$1/build/bin/lin/release/mcsim" ]; }

if [ -n "${MODDABLE:-}" ] && built "$MODDABLE"; then
  echo "$MODDABLE"
  exit 0
fi

archive="${MODDABLE_ARCHIVE:-}"
if [ -z "$archive" ]; then
  for f in "$root"/../shared/moddable/moddable-sdk-*.tar.xz; do [ -f "$f" ] && archive="$f"; done
fi
if [ -z "$archive" ] || [ ! -f "$archive" ]; then
  echo "No Moddable SDK: \$MODDABLE does not name a built SDK and no SDK archive was found (../shared/moddable/moddable-sdk-*.tar.xz, or set \$MODDABLE_ARCHIVE)." >&2
  exit 1
fi

version="$(basename "$archive" .tar.xz)"
home="${UIOT_SDK_HOME:-$HOME/.cache/uiot-firmware}"
dir="$home/$version"
sdk="$dir/moddable"
if built "$sdk" && [ -f "$dir/.built" ]; then
  echo "$sdk"
  exit 0
fi

# The .built mark is written last: a build that was interrupted is started again from a clean unpack.
rm -rf "$dir"
mkdir -p "$dir"
echo "unpacking $(basename "$archive") into $dir" >&2
tar -xJf "$archive" -C "$dir"
export MODDABLE="$sdk"
export PATH="$MODDABLE/build/bin/lin/release:$PATH"
echo "building the Moddable SDK's host tools (xsc, xsl, mcconfig, mcsim ...); this takes a few minutes" >&2
start=$(date +%s)
if ! make -C "$MODDABLE/build/makefiles/lin" -j2 > "$dir/build.log" 2>&1 || ! built "$MODDABLE"; then
  tail -40 "$dir/build.log" >&2
  echo "the Moddable SDK build failed (the end of its log is above; all of it is in $dir/build.log)" >&2
  exit 1
fi
echo "built in $(( $(date +%s) - start )) s" >&2
touch "$dir/.built"
echo "$sdk"
