#!/usr/bin/env bash
# Build the Python base image locally, without any container registry, and print its tag.
#
#   scripts/base-image.sh            # prints e.g. overnight-base:3f2a9c1d0b7e
#
# Debian 12 (bookworm) minbase from the mirror apt is configured with, plus python3, venv, pip
# and CA certificates; `python` links to python3; this machine's CA bundle and pip settings
# (index, certificate) are copied in so that pip inside `docker build --network host` reaches
# the package index exactly as pip on this machine does. The tag is a hash of everything that
# went in (this script, the mirror, the CA bundle, the pip settings): an unchanged input reuses
# the image the engine already holds. Use it as a stand-in for python:3.11-slim-bookworm:
#
#   docker build --network host --build-arg PYTHON_IMAGE=$(scripts/base-image.sh) --target api .
#
# Needs root, debootstrap and a running engine (DOCKER_HOST).
set -euo pipefail
DOCKER=${DOCKER:-docker}
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

mirror() {
  # The first deb.debian.org-style URI apt uses for bookworm (deb822 or one-line sources).
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
          /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 \
        | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{print $1}')
  echo "${uri:-http://deb.debian.org/debian}"
}

# pip settings of this machine, minus what points at local folders the image cannot see.
pip_conf() {
  echo "[global]"
  echo "cert = /etc/ssl/certs/ca-certificates.crt"
  local index extra
  index=$(pip3 config get global.index-url 2>/dev/null || true)
  extra=$(pip3 config get global.extra-index-url 2>/dev/null | tr ' ' '\n' | grep -v '^file:' | tr '\n' ' ' || true)
  [ -n "$index" ] && [[ $index != file:* ]] && echo "index-url = $index"
  [ -n "${extra// /}" ] && echo "extra-index-url = $extra"
  return 0
}

MIRROR=$(mirror)
PIP_CONF=$(pip_conf)
HASH=$( { cat "$0"; echo "$MIRROR"; echo "$PACKAGES"; echo "$PIP_CONF"; cat "$CA_BUNDLE" 2>/dev/null; } \
        | sha256sum | cut -c1-12)
TAG="overnight-base:$HASH"

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then echo "$TAG"; exit 0; fi
command -v debootstrap >/dev/null || { echo "debootstrap not found: apt-get install -y debootstrap" >&2; exit 1; }
ROOT=$(mktemp -d /var/tmp/overnight-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "base image: debootstrap bookworm from $MIRROR into $ROOT" >&2
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOT" "$MIRROR" >&2
ln -sf python3 "$ROOT/usr/bin/python"
[ -f "$CA_BUNDLE" ] && cp "$CA_BUNDLE" "$ROOT/etc/ssl/certs/ca-certificates.crt"
printf '%s\n' "$PIP_CONF" > "$ROOT/etc/pip.conf"
# Debian marks its Python "externally managed"; the images install into a venv anyway.
# Slim: what no image runs (apt's caches and lists, docs, man pages, translations, byte code
# compiled at install time: Python recompiles on demand, PYTHONDONTWRITEBYTECODE keeps it off disk).
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/lib/apt/lists/* \
       "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/log/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* \
       "$ROOT"/usr/share/info/* "$ROOT"/usr/share/locale/* "$ROOT"/usr/share/lintian
find "$ROOT"/usr/lib/python3* -depth -type d -name __pycache__ -prune -exec rm -rf {} +
tar -C "$ROOT" -c . | "$DOCKER" import \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$TAG" >&2
echo "$TAG"
