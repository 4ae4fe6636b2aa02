#!/bin/sh
# Wraps dist/ThyroidReview into dist/ThyroidReview-<version>-linux-<arch>.tar.gz with the
# install script, the menu entry and the icon. Run by `make dist` after PyInstaller.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIST=${DIST:-"$ROOT/dist"}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml")
NAME="ThyroidReview-$VERSION-linux-$(uname -m)"
STAGE="$DIST/$NAME"
rm -rf "$STAGE"
mkdir -p "$STAGE"
cp -a "$DIST/ThyroidReview" "$STAGE/"
cp "$ROOT/packaging/install.sh" "$ROOT/packaging/thyroid-review.desktop" "$STAGE/"
cp "$ROOT/resources/icons/thyroid-review.png" "$STAGE/"
cat > "$STAGE/README.txt" <<TXT
Thyroid Review $VERSION - for research use only, not for use in diagnostic procedures.
Install:    ./install.sh          (menu entry, 'thyroid-review' command, runs the self-test)
Or run in place: ./ThyroidReview/ThyroidReview [images...]
Self-test:  ./ThyroidReview/ThyroidReview --selftest [image]
Uninstall:  ./install.sh --uninstall
Runs the models on the CPU (ONNX Runtime; no TensorFlow inside); the status bar and the
self-test say which device and runtime ran the model.
TXT
tar -C "$DIST" -czf "$DIST/$NAME.tar.gz" "$NAME"
rm -rf "$STAGE"
echo "$DIST/$NAME.tar.gz"
