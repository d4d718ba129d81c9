#!/usr/bin/env bash
# Start MMR: installs what is missing (virtualenv + package), then brings every service up under supervisor
# on the configured broker — the embedded simulated IB Gateway by default, so no IB account is needed.
#
#   ./start_mmr.sh           install if needed, start everything, wait for health checks, print where logs are
#   ./start_mmr.sh --cli     same, then open the mmr REPL against the running services
#   ./start_mmr.sh --status  show service status
#   ./start_mmr.sh --stop    stop everything (same as `mmr down`)
#   ./start_mmr.sh --tmux    run each process in a window of tmux session "mmr" instead (not supervised)
#   ./start_mmr.sh --setup   the setup wizard (IB host/port, account, paper/live, API keys; `mmr setup --help`)
#   ./start_mmr.sh --paper   switch to paper trading (IB), then start
#   ./start_mmr.sh --live    switch to live trading (IB; asks for the account id typed again), then start
#
# MMR_HOME=/some/dir keeps config, data, logs and pid files under that directory instead of ~/.config/mmr and
# ~/.local/share/mmr.
set -euo pipefail
cd "$(dirname "$0")"

action="start"
switch=""
for arg in "$@"; do
  case "$arg" in
    --stop|stop) action="stop" ;;
    --cli|cli) action="cli" ;;
    --status|status) action="status" ;;
    --tmux|tmux) action="tmux" ;;
    --setup|setup) action="setup" ;;
    --paper) switch="--paper" ;;
    --live) switch="--live" ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg (try --help)" >&2; exit 2 ;;
  esac
done

MMR_EXTRAS="web" source scripts/ensure_venv.sh  # the web extra: `mmr web` works after the quick start

# The wizard writes the user's trader.yaml and the .env docker-compose reads (both mode 0600).
if [ "$action" = "setup" ]; then
  exec "$MMR_PY" -m trader.mmr_cli setup --env-file .env ${switch:+"$switch"}
fi
if [ -n "$switch" ]; then
  "$MMR_PY" -m trader.mmr_cli setup --broker ib "$switch" --env-file .env
fi
# First start with broker ib and no account configured: run the wizard (a terminal is needed for its questions).
if [ "$action" != stop ] && [ "$action" != status ] && "$MMR_PY" -c 'import sys; from trader.cli.setup import setup_needed; from trader.config import load_trader_config
sys.exit(0 if setup_needed(load_trader_config()) else 1)' 2>/dev/null; then
  if [ -t 0 ]; then
    echo "broker is ib but no IB account is configured: starting the setup wizard" >&2
    "$MMR_PY" -m trader.mmr_cli setup --broker ib --env-file .env
  else
    echo "broker is ib but no IB account is configured: run ./start_mmr.sh --setup (or mmr setup --help)" >&2
    exit 1
  fi
fi

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
