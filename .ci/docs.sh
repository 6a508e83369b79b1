#!/usr/bin/env bash
# The documentation site (mkdocs.yml, docs/): build it with --strict, so a broken link, a missing page or an
# API reference that does not resolve fails CI. Into a temporary folder: nothing is left in the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
site="$(mktemp -d /tmp/lightning-clr-site.XXXXXX)"
trap 'rm -rf "$site"' EXIT
start=$SECONDS
NO_MKDOCS_2_WARNING=1 python -m mkdocs build --strict --site-dir "$site"
echo "docs: built in $((SECONDS - start)) s"
