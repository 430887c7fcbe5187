#!/usr/bin/env bash
# mypy --strict over the import package as installed: the card's folders (connectors/, processors/,
# flows/) are subpackages of `newswire` through setuptools' package-dir, which mypy cannot follow in an
# editable install, so mirror that layout with symlinks under build/ and check the package there.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/typecheck
rm -rf "$tree" && mkdir -p "$tree/newswire"
for f in newswire/*; do ln -s "../../../$f" "$tree/newswire/$(basename "$f")"; done
for d in connectors processors flows; do ln -s "../../../$d" "$tree/newswire/$d"; done
cd "$tree" && ../../.venv/bin/mypy --config-file ../../pyproject.toml -p newswire
