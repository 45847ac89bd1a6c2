#!/usr/bin/env bash
# System packages for the browser and WebGPU tests (Debian packages only):
#   - Mesa lavapipe >= 25 (a CPU Vulkan driver; Dawn rejects the 22.x in bookworm), from
#     bookworm-backports on Debian 12, so that the `webgpu` npm package (Dawn) finds an adapter in Node;
#   - chromium, for the browser tests (it also ships SwiftShader's Vulkan ICD, a second CPU driver).
# Idempotent and quick when everything is already there. A failing step prints why and the script
# goes on: the tests then report what they skipped and why. Always exits 0.
set -uo pipefail

log() { echo "install-system-deps: $*"; }

if ! command -v apt-get >/dev/null 2>&1; then
  log "apt-get not found (not a Debian-like system); skipping. WebGPU and browser tests will skip."
  exit 0
fi

SUDO=''
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO='sudo'; else
    log "not root and no sudo; cannot install packages. WebGPU and browser tests will skip."
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

LVP_ICD=/usr/share/vulkan/icd.d/lvp_icd.json
CODENAME="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"

# Installed version of a package, empty when absent.
installed_version() { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | awk '/install ok installed/ {print $4}'; }

mesa_ok() {
  local v
  v="$(installed_version mesa-vulkan-drivers)"
  [ -n "$v" ] && [ -f "$LVP_ICD" ] && dpkg --compare-versions "$v" ge 25
}
chromium_ok() { [ -n "$(installed_version chromium)" ] && command -v chromium >/dev/null 2>&1; }

if mesa_ok && chromium_ok; then
  log "already installed: mesa-vulkan-drivers $(installed_version mesa-vulkan-drivers), chromium $(installed_version chromium)"
  exit 0
fi

# On bookworm, Mesa 25 lives in bookworm-backports. Derive that suite from the configured sources
# (same mirror, components and keyring) instead of writing any host name here.
BACKPORTS_SOURCES=/etc/apt/sources.list.d/peft-backports.sources
BACKPORTS_LIST=/etc/apt/sources.list.d/peft-backports.list
MESA_TARGET=()
if [ "$CODENAME" = bookworm ]; then
  MESA_TARGET=(-t bookworm-backports)
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      # First stanza of the deb822 file (the main archive), with its suite replaced.
      sed -n '1,/^$/p' /etc/apt/sources.list.d/debian.sources \
        | sed 's/^Suites:.*/Suites: bookworm-backports/' | $SUDO tee "$BACKPORTS_SOURCES" >/dev/null \
        && log "added $BACKPORTS_SOURCES (derived from debian.sources)"
    elif [ -f /etc/apt/sources.list ]; then
      # One-line format: the first `deb <uri> bookworm <components>` line, with its suite replaced.
      grep -m1 -E '^deb[[:space:]].*[[:space:]]bookworm[[:space:]]' /etc/apt/sources.list \
        | sed -E 's/[[:space:]]bookworm[[:space:]]/ bookworm-backports /' | $SUDO tee "$BACKPORTS_LIST" >/dev/null \
        && log "added $BACKPORTS_LIST (derived from sources.list)"
    else
      log "no Debian sources found to derive bookworm-backports from; Mesa 25 cannot be installed"
    fi
  fi
fi

if ! $SUDO apt-get update -q; then
  log "apt-get update failed (offline or broken sources?); trying to install from the current lists"
fi

if mesa_ok; then
  log "mesa-vulkan-drivers $(installed_version mesa-vulkan-drivers) already installed"
else
  # libvulkan1 comes from the same suite so that the loader matches the driver.
  if $SUDO apt-get install "${APT_OPTS[@]}" "${MESA_TARGET[@]}" mesa-vulkan-drivers libvulkan1; then
    if mesa_ok; then
      log "installed mesa-vulkan-drivers $(installed_version mesa-vulkan-drivers) (lavapipe ICD: $LVP_ICD)"
    else
      log "mesa-vulkan-drivers $(installed_version mesa-vulkan-drivers) installed, but Dawn needs >= 25" \
        "(lavapipe 22.x lacks shaderUniform*ArrayDynamicIndexing); WebGPU tests may fall back to SwiftShader or skip"
    fi
  else
    log "installing mesa-vulkan-drivers failed (see apt output above); WebGPU tests may skip"
  fi
fi

if chromium_ok; then
  log "chromium $(installed_version chromium) already installed"
elif $SUDO apt-get install "${APT_OPTS[@]}" chromium; then
  log "installed chromium $(installed_version chromium) (SwiftShader ICD: /usr/lib/chromium/vk_swiftshader_icd.json)"
else
  log "installing chromium failed (see apt output above); browser tests will skip"
fi

exit 0
