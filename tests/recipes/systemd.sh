#!/bin/bash
# The systemd recipe of docs/scheduling.md, run as written under a real systemd: PID 1 of its own PID, mount, UTS and
# IPC namespaces (for a machine whose own PID 1 is not systemd), with its own /run, /tmp and cgroup tree (so nothing
# it cleans at boot is the host's) and only the recipe's units under /etc/systemd/system.
#
# Needs root, unshare/nsenter, systemd installed, a user `kaggle` with a fresh clone installed by `make install`
# in /home/kaggle/kaggle-digits, and `kaggle-digits serve-local` running (kaggle.com is out of reach where this
# was run): its token file is copied to ~kaggle/.kaggle/access_token, and a drop-in points the service at it.
# Usage: sudo bash tests/recipes/systemd.sh <serve-local's token file>
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
units=$(mktemp -d)
python3 - "$repo/docs/scheduling.md" "$units" <<'PY'
import sys
from pathlib import Path
blocks = Path(sys.argv[1]).read_text().split("```ini\n")
Path(sys.argv[2], "kaggle-digits.service").write_text(blocks[1].split("```")[0])
Path(sys.argv[2], "kaggle-digits.timer").write_text(blocks[2].split("```")[0])
PY
mkdir -p "$units/kaggle-digits.service.d"
cat > "$units/kaggle-digits.service.d/local-server.conf" <<'CONF'
# This check only: the run talks to `kaggle-digits serve-local`, which takes only a token named explicitly.
[Service]
Environment=KAGGLE_API_ENVIRONMENT=TEST
Environment=KAGGLE_API_TOKEN=/home/kaggle/.kaggle/access_token
CONF
install -d -o kaggle -g kaggle -m 700 /home/kaggle/.kaggle
install -o kaggle -g kaggle -m 600 "$1" /home/kaggle/.kaggle/access_token

unshare --pid --fork --mount --uts --ipc --mount-proc bash -c "
  set -e
  mount --make-rprivate /
  mount -t tmpfs tmpfs /etc/systemd/system
  cp -r $units/. /etc/systemd/system/
  for folder in /run /tmp /var/tmp /sys/fs/cgroup; do mount -t tmpfs tmpfs \$folder; done
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
  exec env container=namespace /lib/systemd/systemd --system --log-target=console --log-level=notice
" > /dev/null 2>&1 &
sleep 6
pid1=$(pgrep -f "^/lib/systemd/systemd --system" | head -1)
NS() { nsenter -t "$pid1" -a "$@"; }
show() { NS systemctl show kaggle-digits.service -p Result -p ExecMainStatus -p ActiveState --no-pager | tr '\n' ' '; echo; }
trap 'kill -9 "$pid1"; rm -r "$units"' EXIT
NS systemctl is-system-running --wait
echo "== systemctl enable --now kaggle-digits.timer (as written)"
NS systemctl enable --now kaggle-digits.timer
NS systemctl list-timers kaggle-digits.timer --no-pager
for run in 1 2; do
  echo "== run $run: systemctl start kaggle-digits.service (what the timer starts at 06:00 UTC)"
  NS systemctl start kaggle-digits.service; show
done
echo "== run 3: the timer itself starts it (a drop-in for this check: every 20 s)"
NS bash -c 'mkdir -p /etc/systemd/system/kaggle-digits.timer.d &&
  printf "[Timer]\nOnCalendar=\nOnCalendar=*:*:0/20\n" > /etc/systemd/system/kaggle-digits.timer.d/often.conf &&
  systemctl daemon-reload && systemctl restart kaggle-digits.timer'
sleep 10; show
NS bash -c 'rm -r /etc/systemd/system/kaggle-digits.timer.d && systemctl daemon-reload && systemctl restart kaggle-digits.timer'
echo "== run 4: the token file gone"
mv /home/kaggle/.kaggle/access_token /home/kaggle/.kaggle/access_token.away
NS systemctl start kaggle-digits.service; show
mv /home/kaggle/.kaggle/access_token.away /home/kaggle/.kaggle/access_token
echo "== journalctl -u kaggle-digits (as written)"
NS journalctl -u kaggle-digits --no-pager -o short-iso
echo "== the credential each run's log names"
grep -ho "credentials: [^)]*)" /home/kaggle/kaggle-digits/data/logs/*-run.log | sort | uniq -c
