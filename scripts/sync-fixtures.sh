#!/usr/bin/env bash
# Keeps tests/fixtures, the repository's copy of the golden data, identical to
# ../shared/fixtures beside the checkout, where the data is made. The copy is
# what the tests read, so a fresh clone runs every fixture test.
#   scripts/sync-fixtures.sh          replace tests/fixtures by a fresh copy
#   scripts/sync-fixtures.sh --check  only compare; fail naming the first difference
# Without ../shared/fixtures (a user's clone) there is nothing to compare
# with: it says so and succeeds. ../shared is only ever read.
set -euo pipefail
cd "$(dirname "$0")/.."

golden=../shared/fixtures
copy=tests/fixtures
check=0
case ${1:-} in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: scripts/sync-fixtures.sh [--check]" >&2; exit 2 ;;
esac

if [[ ! -d $golden ]]; then
  echo "sync-fixtures: no $golden beside the checkout; $copy left as it is"
  exit 0
fi

# The first difference as one line, or nothing when the folders are identical
# (contents, names, files against folders; modes do not count: git keeps none).
# diff's own errors (an unreadable file) come out as a difference too.
first_difference() {
  [[ -d $copy ]] || { echo "$copy is missing"; return; }
  LC_ALL=C diff -rq "$golden" "$copy" 2>&1 | head -n 1 || true
}

difference=$(first_difference)
if [[ -z $difference ]]; then
  echo "sync-fixtures: $copy is identical to $golden"
  exit 0
fi
if [[ $check == 1 ]]; then
  echo "sync-fixtures: $copy differs from $golden: $difference (run scripts/sync-fixtures.sh)" >&2
  exit 1
fi

echo "sync-fixtures: $copy differs from $golden ($difference): copying it afresh"
# A fresh copy rather than an update in place: nothing stale can survive it.
# --no-preserve=mode: the golden files are read-only; the copy must stay writable.
rm -rf "$copy"
cp -R --no-preserve=mode "$golden" "$copy"
difference=$(first_difference)
if [[ -n $difference ]]; then
  echo "sync-fixtures: copy failed: $difference" >&2
  exit 1
fi
echo "sync-fixtures: $copy now equals $golden ($(du -sh "$copy" | cut -f1))"
