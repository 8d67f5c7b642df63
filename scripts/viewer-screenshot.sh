#!/bin/sh
# Renders a `recap view` page in a real browser (Debian's headless chromium) to a PNG: what
# docs/images/viewer.png shows. Not part of make test (chromium is too big for every CI run):
#   apt-get install chromium      # once
#   sh scripts/own-data-walkthrough.sh            # writes runs/mine/view.html
#   sh scripts/viewer-screenshot.sh runs/mine/view.html docs/images/viewer.png [WIDTH HEIGHT]
# The page's script runs before the capture (it fills in the shown count and the marks), so a
# page whose script fails shows an empty count in the picture.
set -eu
PAGE=${1:-runs/mine/view.html}
PNG=${2:-docs/images/viewer.png}
WIDTH=${3:-1400}
HEIGHT=${4:-900}
BROWSER=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$BROWSER" ]; then
  echo "viewer-screenshot: no chromium on PATH (apt-get install chromium)" >&2
  exit 2
fi
if [ ! -f "$PAGE" ]; then
  echo "viewer-screenshot: $PAGE: no such page (recap view --out writes one)" >&2
  exit 2
fi
# A profile of its own, so a desktop chromium's locks and settings are never touched.
PROFILE=$(mktemp -d)
trap 'rm -rf "$PROFILE"' EXIT
"$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$PROFILE" --window-size="$WIDTH,$HEIGHT" \
    --screenshot="$(realpath -m "$PNG")" "file://$(realpath "$PAGE")" 2>/dev/null
test -s "$PNG"
echo "viewer-screenshot: $PNG (${WIDTH}x$HEIGHT) from $PAGE"
