#!/usr/bin/env bash
# tubeletd under a real systemd: boots systemd as PID 1 in a throw-away container (systemd-nspawn over
# this machine's own root: a tmpfs root with /usr, /etc and /var overlaid on tmpfs, so nothing here
# changes; no network but its own loopback), installs the package with apt inside and runs
# Tests/System/inside.sh there as a unit. Prints each check, the container's journal when one fails,
# and 'N passed, N failed'; exit status 1 on any failure.
#
#   Tests/System/systemd-service.sh [--deb dist/tubelet_VERSION_ARCH.deb] [--unit FILE] [--keep DIR]
#
# --deb   the package to test (default: build it with Scripts/package-deb)
# --unit  FILE replaces the package's tubeletd.service inside (to check that the test can fail)
# --keep  leave the results, events and journal in DIR
# Needs root and systemd-nspawn (Debian package systemd-container).
set -euo pipefail
cd "$(dirname "$0")/../.."
deb="" unit="" keep=""
while [ $# -gt 0 ]; do
    case "$1" in
        --deb) deb=${2:?--deb needs a file}; shift 2 ;;
        --unit) unit=${2:?--unit needs a file}; shift 2 ;;
        --keep) keep=${2:?--keep needs a directory}; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "systemd-service.sh: unknown argument '$1' (expected --deb FILE, --unit FILE, --keep DIR)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "systemd-service.sh: needs root (systemd-nspawn)" >&2; exit 1; }
command -v systemd-nspawn >/dev/null || { echo "systemd-service.sh: no systemd-nspawn (apt-get install systemd-container)" >&2; exit 1; }
if [ -z "$deb" ]; then deb=$(Scripts/package-deb | tail -1); fi
[ -f "$deb" ] || { echo "systemd-service.sh: no package at $deb" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/pkg" "$work/out" "$work/override"
cp "$deb" "$work/pkg/"
chmod 777 "$work/out"
if [ -n "$unit" ]; then cp "$unit" "$work/override/tubeletd.service"; fi
cat > "$work/tubelet-systemtest.service" <<'EOF'
[Unit]
Description=tubelet system test (Tests/System/inside.sh)
# systemd-analyze security asks the system bus.
Wants=dbus.socket
After=dbus.socket
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/bin/bash /systemtest/inside.sh
TimeoutStartSec=600
EOF

echo "systemd-service.sh: booting systemd in a container to test $(basename "$deb")${unit:+ with unit $unit}" >&2
started=$(date +%s)
status=0
timeout 900 systemd-nspawn --register=no --keep-unit --volatile=yes -D / \
    --overlay=/usr::/usr --overlay=/etc::/etc --overlay=/var::/var --private-network \
    --bind="$work/out:/out" --bind-ro="$work/pkg:/pkg" --bind-ro="$PWD/Tests/System:/systemtest" \
    --bind-ro="$work/override:/unit-override" \
    --bind-ro="$work/tubelet-systemtest.service:/etc/systemd/system/tubelet-systemtest.service" \
    --console=pipe -b -- systemd.unit=tubelet-systemtest.service > "$work/out/console.log" 2>&1 || status=$?
echo "systemd-service.sh: the container ran $(( $(date +%s) - started )) s (systemd-nspawn exit $status)" >&2

results=$work/out/results
passed=0 failed=0
if [ -f "$results" ]; then
    while IFS= read -r line; do
        case "$line" in
            PASS*) passed=$((passed + 1)); echo "  $line" ;;
            FAIL*) failed=$((failed + 1)); echo "  $line" ;;
            NOTE*) echo "  $line" ;;
        esac
    done < "$results"
    grep -qx done "$results" || { echo "  FAIL finished: the test in the container did not finish"; failed=$((failed + 1)); }
else
    echo "  FAIL container: no results (systemd-nspawn exit $status); its console:"
    tail -40 "$work/out/console.log" | sed 's/^/    /'
    failed=$((failed + 1))
fi
if [ $failed -ne 0 ]; then
    for file in status.txt journal.txt apt.log events.err; do
        [ -s "$work/out/$file" ] || continue
        echo "---- $file (container) ----"
        if [ $file = journal.txt ]; then grep -v -e 'kernel:' "$work/out/$file" | tail -150; else tail -40 "$work/out/$file"; fi
    done
fi
if [ -n "$keep" ]; then mkdir -p "$keep" && cp -r "$work/out/." "$keep/"; fi
echo "systemd: $passed passed, $failed failed"
[ $failed -eq 0 ]
