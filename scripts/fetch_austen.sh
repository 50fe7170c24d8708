#!/usr/bin/env bash
# Fetch Jane Austen's six novels (public domain) from Debian's r-cran-janeaustenr without
# installing R: download the .deb, unpack its data/Rdata.{rdb,rdx} into the TinyGPT cache.
# Idempotent. data=austen reads them with the pure-Python `rdata` package (TINYGPT_DATA moves them).
set -euo pipefail
dest="${TINYGPT_DATA:-$HOME/.local/share/tinygpt}/janeaustenr"
[ -s "$dest/Rdata.rdb" ] && [ -s "$dest/Rdata.rdx" ] && exit 0
command -v apt-get >/dev/null || { echo "fetch_austen: needs Debian/Ubuntu's apt-get" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
if ! apt-get download r-cran-janeaustenr >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null
  apt-get download r-cran-janeaustenr >/dev/null 2>&1
fi
dpkg-deb -x r-cran-janeaustenr_*.deb unpacked
mkdir -p "$dest"
cp unpacked/usr/lib/R/site-library/janeaustenr/data/Rdata.rd[bx] "$dest/"
echo "Jane Austen's novels are in $dest"
