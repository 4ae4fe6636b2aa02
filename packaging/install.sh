#!/bin/sh
# Installs the Thyroid Review bundle for the current user (no root, no Python needed):
#   ./install.sh            install to ~/.local/opt/ThyroidReview, add a menu entry and
#                           the `thyroid-review` command, then run the self-test
#   ./install.sh --uninstall
# PREFIX=/opt ./install.sh installs elsewhere (then it needs write access there).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-"$HOME/.local/opt"}
DEST="$PREFIX/ThyroidReview"
DATA=${XDG_DATA_HOME:-"$HOME/.local/share"}
BIN_DIR="$HOME/.local/bin"
DESKTOP="$DATA/applications/thyroid-review.desktop"
ICON="$DATA/icons/hicolor/256x256/apps/thyroid-review.png"

if [ "${1:-}" = "--uninstall" ]; then
    rm -rf "$DEST" "$DESKTOP" "$ICON" "$BIN_DIR/thyroid-review"
    echo "Thyroid Review removed (your audit log and settings are kept)."
    exit 0
fi

[ -x "$HERE/ThyroidReview/ThyroidReview" ] || { echo "ThyroidReview/ not found next to install.sh" >&2; exit 1; }
mkdir -p "$PREFIX" "$BIN_DIR" "$(dirname "$DESKTOP")" "$(dirname "$ICON")"
rm -rf "$DEST.new"
cp -a "$HERE/ThyroidReview" "$DEST.new"          # copy first, then swap: never half installed
rm -rf "$DEST" && mv "$DEST.new" "$DEST"
ln -sf "$DEST/ThyroidReview" "$BIN_DIR/thyroid-review"
cp "$HERE/thyroid-review.png" "$ICON"
sed "s|@BIN@|$DEST/ThyroidReview|" "$HERE/thyroid-review.desktop" > "$DESKTOP"
chmod +x "$DESKTOP"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$DATA/applications" || true
echo "Installed to $DEST; menu entry 'Thyroid Review'; command: thyroid-review"
echo "Running the self-test..."
"$DEST/ThyroidReview" --selftest
