#!/bin/sh
# Fetches the real text the wordcount example is demonstrated and tested on: the fortune-cookie
# collection of Debian's `fortunes` package (about 2.6 MB of English quotations, jokes, poems and
# definitions gathered over decades by BSD and Debian contributors; not written here). The package
# is downloaded with `apt-get download` and unpacked with `dpkg -x` into a temporary directory: it
# is never installed, and the text is never committed. Its plain-text files (not the .dat
# indexes, not the .u8 links) are concatenated in name order.
#
# When the package cannot be downloaded (no network, no package lists and not root), it falls back
# to the licence texts every Debian system ships in /usr/share/common-licenses (about 300 KB), and
# says so.
#
# Usage: examples/wordcount/fetch-text.sh DEST    (an existing non-empty DEST is reused)
# Prints the source, the size and the number of lines on stderr; exits 0 when DEST holds a text.
set -eu

dest=${1:?usage: fetch-text.sh DEST}
pkg=fortunes
dir=usr/share/games/fortunes

say() { echo "fetch-text: $*" >&2; }

if [ -s "$dest" ]; then
    say "using cached $dest ($(wc -c <"$dest") bytes)"
    exit 0
fi

tmp=$(mktemp -d /tmp/shoal-fetch-text.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir -p "$(dirname "$dest")"

download() { (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1); }
got=0
if download; then
    got=1
elif [ "$(id -u)" -eq 0 ] && apt-get update -q >/dev/null 2>&1 && download; then
    got=1
fi

if [ "$got" -eq 1 ]; then
    deb=$(ls "$tmp"/"$pkg"_*.deb 2>/dev/null | head -1)
    [ -n "$deb" ] || { say "no $pkg .deb downloaded"; exit 1; }
    dpkg -x "$deb" "$tmp/root"
    : >"$tmp/text"
    for f in "$tmp/root/$dir"/*; do
        case "$f" in *.dat | *.u8) continue ;; esac
        [ -f "$f" ] && [ ! -L "$f" ] && cat "$f" >>"$tmp/text"
    done
    [ -s "$tmp/text" ] || { say "$(basename "$deb") holds no text under /$dir"; exit 1; }
    src="$(basename "$deb")"
else
    say "apt-get download $pkg failed; falling back to /usr/share/common-licenses"
    [ -d /usr/share/common-licenses ] || { say "no /usr/share/common-licenses either"; exit 1; }
    find /usr/share/common-licenses -maxdepth 1 -type f | sort | xargs cat >"$tmp/text"
    src=/usr/share/common-licenses
fi
cp "$tmp/text" "$dest.tmp"
mv "$dest.tmp" "$dest"
say "wrote $dest from $src: $(wc -c <"$dest") bytes, $(wc -l <"$dest") lines"
