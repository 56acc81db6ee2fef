#!/bin/sh
# Release 2.0's config rewrite: 2.0 renames 'listen' to 'bind' and adds a per-host worker count.
# nfsup runs it on a temp copy ($NFSUP_CONFIG); the real file is replaced only if this succeeds.
set -e
sed -i 's/^listen:/bind:/' "$NFSUP_CONFIG"
echo "workers: $(( $(printf %s "$NFSUP_HOST" | tail -c 1) * 2 ))   # added by 2.0 for $NFSUP_HOST" >> "$NFSUP_CONFIG"
