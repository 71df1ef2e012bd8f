#!/usr/bin/env bash
# Builds a stand-in for the Dockerfile's base image where no image registry can be reached:
# a Debian bookworm root file system (debootstrap, from Debian's package mirror) with python3,
# python3-venv and python-is-python3, plus this host's CA bundle so that pip inside the build
# can check the package index's certificate. It is imported and tagged as the base the
# Dockerfile names. An image already tagged so is kept: the build takes minutes on two cores.
#
# Usage: stand_in_base.sh TAG
set -euo pipefail
tag="$1"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag already present"
  exit 0
fi
root="$(mktemp -d /var/tmp/cds-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3 \
  bookworm "$root" >"$root.log" 2>&1 \
  || { tail -20 "$root.log"; exit 1; }
rm -f "$root.log"
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$tag" >/dev/null
echo "base image $tag built with debootstrap"
