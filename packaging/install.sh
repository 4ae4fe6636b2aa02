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

case "$DEST" in
    *[\"\`\$\\]*) echo "Please install to a folder without \" \` \$ or \\ in its path (PREFIX=...)." >&2; exit 1 ;;
esac
[ -x "$HERE/ThyroidReview/ThyroidReview" ] || { echo "ThyroidReview/ not found next to install.sh" >&2; exit 1; }
mkdir -p "$PREFIX" "$BIN_DIR" "$(dirname "$DESKTOP")" "$(dirname "$ICON")"
rm -rf "$DEST.new" "$DEST.old"
cp -a "$HERE/ThyroidReview" "$DEST.new"   # copy in full first, then swap with two renames
if [ -e "$DEST" ]; then mv "$DEST" "$DEST.old"; fi
mv "$DEST.new" "$DEST"
rm -rf "$DEST.old"
ln -sf "$DEST/ThyroidReview" "$BIN_DIR/thyroid-review"
cp "$HERE/thyroid-review.png" "$ICON"
# Exec= takes the path in double quotes (spaces are fine); escape & and | for sed.
EXEC=$(printf '%s' "$DEST/ThyroidReview" | sed -e 's/[&|]/\\&/g')
sed "s|@BIN@|\"$EXEC\"|" "$HERE/thyroid-review.desktop" > "$DESKTOP"
chmod +x "$DESKTOP"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$DATA/applications" || true
echo "Installed to $DEST; menu entry 'Thyroid Review'; command: thyroid-review"
echo "Running the self-test..."
"$DEST/ThyroidReview" --selftest
