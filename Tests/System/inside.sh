#!/bin/bash
# Runs inside the throw-away container (Tests/System/systemd-service.sh) as a unit, systemd being PID 1:
# installs the package with apt and checks tubeletd as a service. One line per check in /out/results
# (PASS/FAIL name: detail); on any failure the journal goes to /out/journal.txt. Steps after a failed
# start are skipped (they need a running daemon).
set -u
out=/out
results=$out/results
events=$out/events.jsonl
config=/etc/tubelet/tubelet.yaml
: > "$results"
failed=0
pass() { echo "PASS $1${2:+: $2}" >> "$results"; }
fail() { echo "FAIL $1${2:+: $2}" >> "$results"; failed=1; }
check() { local name=$1 detail=$2; shift 2; if "$@"; then pass "$name" "$detail"; else fail "$name" "$detail"; fi; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
finish() {
    [ -n "${subscriber:-}" ] && kill "$subscriber" 2>/dev/null
    if [ $failed -ne 0 ]; then
        systemctl status tubeletd --no-pager -l > "$out/status.txt" 2>&1
        journalctl -b --no-pager -o short-monotonic > "$out/journal.txt" 2>&1
    fi
    echo done >> "$results"
    exit 0
}
# Event queries over the subscriber's JSON lines (python3: the checks only, never the daemon).
query() { python3 /systemtest/events.py "$events" "$@"; }

# 1. Install with apt from the package alone (no network in here: every Depends must already be a
# Debian package on this root, as on the host that built it).
if apt-get install -y --no-install-recommends /pkg/tubelet_*.deb > "$out/apt.log" 2>&1; then
    pass install "apt-get install ./tubelet_*.deb"
else
    fail install "apt-get failed (apt.log)"; finish
fi
check user "system user tubelet in group video" bash -c 'id -nG tubelet | tr " " "\n" | grep -qx video'
check enabled-not-started "enabled, not started on install" \
    bash -c '[ "$(systemctl is-enabled tubeletd)" = enabled ] && ! systemctl -q is-active tubeletd'
check conffile "/etc/tubelet/tubelet.yaml is a conffile" bash -c 'dpkg-query -W -f="\${Conffiles}" tubelet | grep -q /etc/tubelet/tubelet.yaml'
if [ -f /unit-override/tubeletd.service ]; then
    # The check that this test can fail: another unit (the repository's before the fix) in place of the package's.
    cp /unit-override/tubeletd.service /etc/systemd/system/tubeletd.service
    systemctl daemon-reload
    echo "NOTE unit replaced by /unit-override/tubeletd.service" >> "$results"
fi
for program in tubeletd tubelet; do
    libraries=$(ldd /usr/bin/$program)
    check "ldd-$program" "links no Swift toolchain library" \
        bash -c "! grep -Eq 'swift|/opt/' <<< \"\$0\"" "$libraries"
done
check check-config "tubeletd --check-config $config" runuser -u tubelet -- tubeletd --check-config "$config"

# 2. Start: READY within 10 s (Type=notify: systemctl start returns at READY=1).
tubelet events --connect tcp://127.0.0.1:5556 --jsonl > "$events" 2> "$out/events.err" &
subscriber=$!
t0=$(now)
timeout 30 systemctl start tubeletd; rc=$?
t1=$(now)
took=$(elapsed "$t0" "$t1")
if [ $rc -eq 0 ] && systemctl -q is-active tubeletd && python3 -c "import sys; sys.exit(0 if $took <= 10 else 1)"; then
    pass start "active (READY) in $took s"
else
    fail start "systemctl start exit $rc after $took s, state $(systemctl is-active tubeletd)"; finish
fi
pid=$(systemctl show -P MainPID tubeletd)

# 3. A subscriber receives action events.
check events "an action start reaches the subscriber within 30 s" query wait-start --timeout 30

# 4. Reload after raising end_score 0.2 -> 0.6: exit 0, and an action ends (reason score) at a score the
# old threshold could not have ended it at (>= 0.2): the new threshold is in effect.
mark=$(wc -l < "$events")
sed -i 's/^  end_score: 0.2$/  end_score: 0.6/' "$config"
grep -q '^  end_score: 0.6$' "$config" || fail reload "the test could not edit end_score in $config"
reload_output=$(systemctl reload tubeletd 2>&1); rc=$?
check reload "systemctl reload exit $rc" test $rc -eq 0
check reload-reported "the reloaded event names the camera's decisions as updated" query wait-daemon reloaded --after "$mark" --updated demo --timeout 10
check reload-in-effect "an end by score at >= 0.2 and < 0.6 after the reload" query wait-end-between 0.2 0.6 --after "$mark" --timeout 60

# 5. Reload of a broken file: non-zero exit, the reason in systemctl status, the daemon active with the old config.
cp "$config" "$out/good.yaml"
printf 'cameras: [\n' >> "$config"
mark=$(wc -l < "$events")
reload_output=$(systemctl reload tubeletd 2>&1); rc=$?
check reload-broken "systemctl reload exit $rc (non-zero)" test $rc -ne 0
check reload-broken-active "still active, same process" bash -c "systemctl -q is-active tubeletd && [ \"\$(systemctl show -P MainPID tubeletd)\" = $pid ]"
check reload-broken-status "systemctl status shows the reason" bash -c 'systemctl status tubeletd --no-pager -l -n 20 | grep -q "reload refused.*tubelet.yaml"'
check reload-broken-old-config "the old end_score (0.6) still decides: an end by score at >= 0.2" query wait-end-between 0.2 0.6 --after "$mark" --timeout 60
cp "$out/good.yaml" "$config"

# 6. Stop with actions open: exit 0 within 5 s, an end (reason stopping) for each open action.
query wait-open --timeout 30 > /dev/null
open=$(query open)
t0=$(now)
timeout 20 systemctl stop tubeletd; rc=$?
t1=$(now)
took=$(elapsed "$t0" "$t1")
check stop "systemctl stop exit $rc in $took s" python3 -c "import sys; sys.exit(0 if $rc == 0 and $took <= 5 else 1)"
sleep 1
check stop-ends "each open action ($open) ended with reason stopping" query ended-stopping $open
check stop-open "at least one action was open at stop" test -n "$open"

# 7. Watchdog: a daemon that stops answering (TUBELET_FAULT=hang-after:3) is killed and restarted.
mkdir -p /run/systemd/system/tubeletd.service.d
printf '[Service]\nEnvironment=TUBELET_FAULT=hang-after:3\nWatchdogSec=4\n' > /run/systemd/system/tubeletd.service.d/fault.conf
systemctl daemon-reload
systemctl start tubeletd
first=$(systemctl show -P MainPID tubeletd)
restarted=no
for _ in $(seq 1 60); do
    sleep 0.5
    if [ "$(systemctl show -P NRestarts tubeletd)" -ge 1 ] && [ "$(systemctl show -P MainPID tubeletd)" != "$first" ] \
        && [ "$(systemctl show -P MainPID tubeletd)" != 0 ]; then restarted=yes; break; fi
done
check watchdog "a hung daemon is killed and restarted (pid $first -> $(systemctl show -P MainPID tubeletd))" test $restarted = yes
check watchdog-journal "the journal says why" bash -c 'journalctl -b -u tubeletd --no-pager | grep -q "Watchdog timeout"'
rm -r /run/systemd/system/tubeletd.service.d
systemctl daemon-reload
systemctl stop tubeletd

# 8. The template unit: one instance per camera group, its own file, ports and directories.
sed -e 's|tcp://127.0.0.1:5556|tcp://127.0.0.1:5566|' -e 's|127.0.0.1:9464|127.0.0.1:9474|' "$config" > /etc/tubelet/yard.yaml
check template-start "systemctl start tubeletd@yard" timeout 30 systemctl start tubeletd@yard
check template-reload "systemctl reload tubeletd@yard" systemctl reload tubeletd@yard
printf 'cameras: [\n' >> /etc/tubelet/yard.yaml
check template-reload-broken "systemctl reload tubeletd@yard refuses a broken file" bash -c '! systemctl reload tubeletd@yard 2>/dev/null && systemctl -q is-active tubeletd@yard'
check template-stop "systemctl stop tubeletd@yard" timeout 20 systemctl stop tubeletd@yard

# 9. The sandbox's exposure score.
for unit in tubeletd.service tubeletd@yard.service; do
    score=$(systemd-analyze security "$unit" --no-pager 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
    check "security-$unit" "systemd-analyze security exposure ${score:-unknown} <= 2.0" \
        python3 -c "import sys; sys.exit(0 if '$score' and float('$score') <= 2.0 else 1)"
done
finish
