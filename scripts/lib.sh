# Shared by scripts/run and scripts/test: install what is missing, say clearly what can't be.
# shellcheck shell=bash

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages idp builds against: OpenSSL, SQLite and libpq headers, and for SAML
# (samael) the xmlsec/libxml2 headers and libclang for bindgen.
BUILD_PACKAGES=(gcc libc6-dev pkg-config libssl-dev libsqlite3-dev libpq-dev libxmlsec1-dev libclang-dev)

apt_install() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get to install them; install them by hand"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then command -v sudo >/dev/null || die "missing packages (${missing[*]}); run as root or install sudo"; sudo=sudo; fi
  say "installing ${missing[*]}"
  $sudo apt-get update -qq >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

need_cargo() {
  command -v cargo >/dev/null || die "cargo is not installed: install Rust 1.85 or newer (https://rustup.rs) and run this again"
}
