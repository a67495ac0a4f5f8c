#!/usr/bin/env bash
# The package on a clean Debian 12: debootstraps a minimal bookworm root (from this machine's own Debian
# mirror, read from its apt sources), installs the package there with `apt-get install ./tubelet_*.deb`
# (apt pulls its Depends from that mirror: only Debian packages), lists what apt pulled, checks that no
# Swift toolchain is needed (ldd) and that `tubeletd --check-config /etc/tubelet/tubelet.yaml` passes
# straight after install. Prints 'N passed, N failed'; exit 1 on any failure. Needs root, network access
# to the Debian mirror, debootstrap and systemd-nspawn; takes a few minutes (not part of Scripts/test).
#
#   Tests/System/clean-root.sh [--deb dist/tubelet_VERSION_ARCH.deb] [--keep DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
deb="" keep=""
while [ $# -gt 0 ]; do
    case "$1" in
        --deb) deb=${2:?--deb needs a file}; shift 2 ;;
        --keep) keep=${2:?--keep needs a directory}; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "clean-root.sh: unknown argument '$1' (expected --deb FILE or --keep DIR)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "clean-root.sh: needs root" >&2; exit 1; }
for tool in debootstrap systemd-nspawn; do
    command -v $tool >/dev/null || { echo "clean-root.sh: no $tool (apt-get install debootstrap systemd-container)" >&2; exit 1; }
done
if [ -z "$deb" ]; then deb=$(Scripts/package-deb | tail -1); fi
[ -f "$deb" ] || { echo "clean-root.sh: no package at $deb" >&2; exit 1; }
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { echo "clean-root.sh: no Debian mirror in this machine's apt sources" >&2; exit 1; }

root=$(mktemp -d "${TMPDIR:-/tmp}/tubelet-clean-root.XXXXXX")
trap 'rm -rf "$root"' EXIT
echo "clean-root.sh: debootstrap --variant=minbase bookworm" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" > "$root.debootstrap.log" 2>&1 || {
    tail -20 "$root.debootstrap.log" >&2; exit 1; }
rm -f "$root.debootstrap.log"
chmod 755 "$root"  # mktemp made it 0700: the root of the file system must be open to the tubelet user
cp "$deb" "$root/root/"  # not /tmp: systemd-nspawn mounts a fresh tmpfs there
name=$(basename "$deb")
in_root() { systemd-nspawn -q --register=no --keep-unit -D "$root" "$@"; }

passed=0 failed=0
check() {
    local what=$1; shift
    if "$@"; then echo "  PASS $what"; passed=$((passed + 1)); else echo "  FAIL $what"; failed=$((failed + 1)); fi
}
before=$(in_root dpkg-query -W -f='${Package}\n' | sort)
check "apt-get install ./$name on a minimal bookworm" \
    in_root sh -c "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /root/$name > /root/apt.log 2>&1 || { tail -20 /root/apt.log; false; }"
after=$(in_root dpkg-query -W -f='${Package}\n' | sort)
pulled=$(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')
echo "  apt pulled $(echo "$pulled" | wc -w) packages: $pulled"
# apt's downloads: every "Get:" line names the Debian mirror.
sources=$(sed -n 's/^Get:[0-9]* \([^ ]*\) .*/\1/p' "$root/root/apt.log" | grep -v "^/root/" | sort -u)
echo "  downloaded from: $(echo $sources)"
check "apt pulled the Depends, every one from the Debian mirror" \
    test -n "$pulled" -a -n "$sources" -a "$(echo "$sources" | grep -vc "^$mirror" || true)" = 0
check "ldd /usr/bin/tubeletd finds every library and no Swift toolchain" \
    in_root sh -c 'ldd /usr/bin/tubeletd > /root/ldd && ! grep -Eq "not found|swift" /root/ldd'
check "tubeletd --check-config /etc/tubelet/tubelet.yaml" in_root runuser -u tubelet -- tubeletd --check-config /etc/tubelet/tubelet.yaml
check "the user tubelet is in group video" in_root sh -c 'id -nG tubelet | grep -qw video'
check "tubeletd.service enabled" test -L "$root/etc/systemd/system/multi-user.target.wants/tubeletd.service"
if [ -n "$keep" ]; then mkdir -p "$keep" && cp "$root/root/apt.log" "$keep/" 2>/dev/null || true; fi
echo "clean-root: $passed passed, $failed failed"
[ $failed -eq 0 ]
