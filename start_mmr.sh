#!/usr/bin/env bash
# Start MMR: installs what is missing (virtualenv + package), then brings every service up under supervisor
# on the configured broker — the embedded simulated IB Gateway by default, so no IB account is needed.
#
#   ./start_mmr.sh           install if needed, start everything, wait for health checks, print where logs are
#   ./start_mmr.sh --cli     same, then open the mmr REPL against the running services
#   ./start_mmr.sh --status  show service status
#   ./start_mmr.sh --stop    stop everything (same as `mmr down`)
#   ./start_mmr.sh --tmux    run each process in a window of tmux session "mmr" instead (not supervised)
#
# MMR_HOME=/some/dir keeps config, data, logs and pid files under that directory instead of ~/.config/mmr and
# ~/.local/share/mmr.
set -euo pipefail
cd "$(dirname "$0")"

action="start"
for arg in "$@"; do
  case "$arg" in
    --stop|stop) action="stop" ;;
    --cli|cli) action="cli" ;;
    --status|status) action="status" ;;
    --tmux|tmux) action="tmux" ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg (try --help)" >&2; exit 2 ;;
  esac
done

MMR_EXTRAS="" source scripts/ensure_venv.sh

case "$action" in
  stop)   exec "$MMR_PY" -m trader.mmr_cli down ;;
  status) exec "$MMR_PY" -m trader.mmr_cli status ;;
  tmux)
    "$MMR_PY" -m trader.mmr_cli up --tmux mmr
    if [ -t 1 ]; then exec tmux attach -t mmr; fi
    exit 0 ;;
esac

"$MMR_PY" -m trader.mmr_cli up
if [ "$action" = "cli" ]; then
  exec "$MMR_PY" -m trader.mmr_cli
fi
echo "MMR is up. Try: mmr status | mmr commands | ./start_mmr.sh --cli | ./start_mmr.sh --stop"
