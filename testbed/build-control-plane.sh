#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager and kube-scheduler from Debian's own
# `kubernetes` source package (see shared/design/LOCAL-CLUSTER.md), and cache them outside the
# repository, keyed on the source package version. A second run with a warm cache takes seconds.
#
# Prints the directory holding the binaries on its last line of stdout.
set -euo pipefail

CACHE_ROOT="${TYCHO_TESTBED_CACHE:-$HOME/.cache/tycho-testbed}"
log() { echo "build-control-plane: $*" >&2; }

need_apt=()
for pkg in golang-go rsync jq etcd-server golang-github-modern-go-reflect2-dev dpkg-dev iproute2 openssl; do
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
if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ] && [ -x "$out/kube-scheduler" ] \
   && [ ${#need_apt[@]} -eq 0 ]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  [ "$apt_updated" = 1 ] || DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  log "installing ${need_apt[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ] && [ -x "$out/kube-scheduler" ]; then
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

log "building (8-10 min cold on 2 cores)"
export GOCACHE="$CACHE_ROOT/gocache" GOFLAGS="-mod=vendor"
(cd "$work/src" && make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >&2)

mkdir -p "$out.tmp"
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  cp "$work/src/_output/bin/$b" "$out.tmp/$b"
done
rm -rf "$out"; mv "$out.tmp" "$out"
rm -rf "$work"   # the source tree is 1+ GB once built; the Go build cache stays for rebuilds
log "built: $out"
echo "$out"
