#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler and kube-proxy from Debian's own
# `kubernetes` source package (see shared/design/LOCAL-CLUSTER.md), and cache them outside the
# repository, keyed on the source package version. A second run with a warm cache takes seconds;
# a cache missing some of them (one made before kube-proxy joined) builds just those. Runs that
# overlap (test sessions side by side) wait for each other's build instead of sharing its tree.
#
# Prints the directory holding the binaries on its last line of stdout.
set -euo pipefail

CACHE_ROOT="${TYCHO_TESTBED_CACHE:-$HOME/.cache/tycho-testbed}"
log() { echo "build-control-plane: $*" >&2; }

need_apt=()
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
# Beside the build's: what the test bed runs with (kube-proxy's iptables, ipset for its --cleanup,
# conntrack for its UDP Services; socat, the relay to the API server; nftables, the guard).
for pkg in golang-go rsync jq etcd-server golang-github-modern-go-reflect2-dev dpkg-dev iproute2 openssl \
           iptables ipset conntrack socat nftables; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done

# A deb-src entry mirroring the machine's deb entry, so `apt-get source` works.
src_list=/etc/apt/sources.list.d/tycho-testbed-src.sources
if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/ ; then
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$src_list"
  else
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > /etc/apt/sources.list.d/tycho-testbed-src.list
  fi
  apt_updated=0
else
  apt_updated=1
fi

version=$(apt-cache showsrc kubernetes 2>/dev/null | awk '/^Version:/ {print $2; exit}' || true)
if [ -z "$version" ]; then
  log "apt-get update (no source index yet)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  apt_updated=1
  version=$(apt-cache showsrc kubernetes | awk '/^Version:/ {print $2; exit}')
fi
[ -n "$version" ] || { log "Debian source package 'kubernetes' not found"; exit 1; }

out="$CACHE_ROOT/kubernetes-$version/bin"
missing() { for b in "${BINARIES[@]}"; do [ -x "$out/$b" ] || echo "$b"; done; }
if [ -z "$(missing)" ] && [ ${#need_apt[@]} -eq 0 ]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  [ "$apt_updated" = 1 ] || DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  log "installing ${need_apt[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/build.lock"
flock 9   # another run building now: wait for it, then use what it built
todo=($(missing))
if [ ${#todo[@]} -eq 0 ]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

work="$CACHE_ROOT/src-$version"
rm -rf "$work"; mkdir -p "$work"
log "fetching source package kubernetes=$version"
(cd "$work" && apt-get source -qq --download-only "kubernetes=$version" >&2 && dpkg-source -x --no-check ./*.dsc src >&2)

# Mandatory patch: vendored reflect2 1.0.1 panics under Go >= 1.18 on any body with a map.
vend="$work/src/vendor/github.com/modern-go/reflect2"
rm -rf "$vend"; mkdir -p "$vend"
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2/. "$vend/"
rm -f "$vend/go.mod" "$vend/go.sum"

log "building ${todo[*]} (all four: about 10 min cold on 2 cores; kube-proxy alone: 3 min)"
export GOCACHE="$CACHE_ROOT/gocache" GOFLAGS="-mod=vendor"
(cd "$work/src" && make WHAT="${todo[*]/#/cmd/}" >&2)

# Each binary lands under its final name only once whole (a copy, then a rename).
mkdir -p "$out"
for b in "${todo[@]}"; do
  cp "$work/src/_output/bin/$b" "$out/.$b.tmp" && mv "$out/.$b.tmp" "$out/$b"
done
rm -rf "$work"   # the source tree is 1+ GB once built; the Go build cache stays for rebuilds
log "built: $out"
echo "$out"
