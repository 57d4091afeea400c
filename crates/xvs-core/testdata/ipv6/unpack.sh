#!/bin/sh
# unpack.sh OUT.txt: extracts the archive capture.sh printed into this directory's 6.12/.
d=$(dirname "$0")/${KVER:-6.12}
rm -rf "$d"; mkdir -p "$d"
sed -n '/=====BEGIN-TAR=====/,/=====END-TAR=====/p' "$1" | sed '1d;$d' | base64 -d | tar -C "$d" -xf -
