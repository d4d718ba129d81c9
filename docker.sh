#!/usr/bin/env bash
# MMR in containers (docker or podman). Credentials live in .env next to this script (mode 0600, never printed).
#
#   ./docker.sh -g        guided start: build, ask IB user/password/account and paper/live into .env, start IB
#                         Gateway + MMR, wait until healthy, run `mmr status`
#   ./docker.sh -b        build the MMR image
#   ./docker.sh -u        start (profile from .env: ib when IB credentials are set, else sim)
#   ./docker.sh -d        stop and remove the containers (volumes kept)
#   ./docker.sh -s        sync trader/, strategies/, config_defaults/ into the running MMR container and restart it
#   ./docker.sh -e        a shell in the MMR container
#   ./docker.sh -l        follow the logs
#   ./docker.sh -c        clean: containers and the MMR image; add --force to delete the volumes too (DuckDB
#                         stores, config, keys, gateway settings) after typing "delete volumes"
#   ./docker.sh -i        IB Gateway only (to connect a local MMR to 127.0.0.1:4002 / 4001)
#   --sim / --ib          pick the profile (sim: MMR alone on the simulated broker, no account needed)
#   MMR_ENGINE=podman     force podman (default: docker when present, else podman)
set -euo pipefail
cd "$(dirname "$0")"

ENV_FILE=".env"
HEALTH_TIMEOUT="${MMR_HEALTH_TIMEOUT:-300}"

die() { echo "docker.sh: $*" >&2; exit 1; }
usage() { sed -n '2,17p' "$0" >&2; exit 2; }

# --- engine -------------------------------------------------------------------------------------
ENGINE=()
COMPOSE=()
pick_engine() {
  local want="${MMR_ENGINE:-}"
  if [ -z "$want" ]; then
    if command -v docker >/dev/null 2>&1; then want=docker
    elif command -v podman >/dev/null 2>&1; then want=podman
    else die "neither docker nor podman is installed"; fi
  fi
  command -v "$want" >/dev/null 2>&1 || die "$want is not installed"
  ENGINE=("$want")
  if "$want" compose version >/dev/null 2>&1; then COMPOSE=("$want" compose)
  elif [ "$want" = docker ] && command -v docker-compose >/dev/null 2>&1; then COMPOSE=(docker-compose)
  elif [ "$want" = podman ] && command -v podman-compose >/dev/null 2>&1; then COMPOSE=(podman-compose)
  else die "no compose for $want (install the compose plugin, docker-compose or podman-compose)"; fi
}

# --- .env ---------------------------------------------------------------------------------------
env_get() {  # env_get KEY → the value in .env (unquoted), empty when unset
  [ -f "$ENV_FILE" ] || return 0
  local line
  line="$(grep -E "^$1=" "$ENV_FILE" | tail -n 1 || true)"
  line="${line#*=}"
  line="${line#\'}"
  printf '%s' "${line%\'}"
}

env_set() {  # env_set KEY VALUE → write KEY='VALUE' into .env, keeping every other line; the file stays 0600
  local key="$1" value="$2" tmp
  case "$value" in *"'"*|*$'\n'*) die "$key: a value with a single quote or a newline cannot go into .env" ;; esac
  tmp="$(umask 077; mktemp "${ENV_FILE}.XXXXXX")"
  if [ -f "$ENV_FILE" ]; then grep -vE "^${key}=" "$ENV_FILE" >"$tmp" || true; fi
  printf "%s='%s'\n" "$key" "$value" >>"$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$ENV_FILE"
}

profile() {
  if [ -n "${PROFILE:-}" ]; then echo "$PROFILE"
  elif [ -n "$(env_get TWS_USERID)" ]; then echo ib
  else echo sim; fi
}

mmr_service() { if [ "$(profile)" = ib ]; then echo mmr; else echo mmr-sim; fi; }

compose() { "${COMPOSE[@]}" --profile "$(profile)" "$@"; }

# --- guided start ---------------------------------------------------------------------------------
ask() {  # ask PROMPT DEFAULT → the answer (the default on an empty line)
  local answer
  read -r -p "$1${2:+ [$2]}: " answer || true
  printf '%s' "${answer:-$2}"
}

valid_account() { [[ "$1" =~ ^(DU|DF|U|F|I)[0-9]{4,10}$ ]]; }

guided() {
  local user password account mode confirm
  [ -f "$ENV_FILE" ] && chmod 600 "$ENV_FILE"
  user="$(ask "IB username" "$(env_get TWS_USERID)")"
  [ -n "$user" ] || die "an IB username is needed (for MMR alone on the simulated broker: ./docker.sh --sim -u)"
  read -r -s -p "IB password (not shown; empty keeps the one in .env): " password || true
  echo >&2
  [ -n "$password" ] || password="$(env_get TWS_PASSWORD)"
  [ -n "$password" ] || die "an IB password is needed"
  account="$(ask "IB account id (DU… for paper, U… for live)" "$(env_get IB_ACCOUNT)")"
  valid_account "$account" || die "'$account' is not an IB account id (U1234567, or DU1234567 for paper)"
  mode="$(ask "trading mode (paper/live)" "$(env_get TRADING_MODE || true)")"
  mode="${mode:-paper}"
  case "$mode" in
    paper)
      [[ "$account" == D* ]] || die "$account is a live account id: paper trading needs the paper account (DU…)" ;;
    live)
      [[ "$account" != D* ]] || die "$account is a paper account id: live trading needs the live account (U…)"
      echo "LIVE trading: orders will use real money in account $account." >&2
      confirm="$(ask "type the account id to confirm" "")"
      [ "$confirm" = "$account" ] || die "live mode not confirmed (typed '$confirm', expected the account id)" ;;
    *) die "trading mode must be paper or live, not '$mode'" ;;
  esac
  env_set TWS_USERID "$user"
  env_set TWS_PASSWORD "$password"
  env_set IB_ACCOUNT "$account"
  env_set TRADING_MODE "$mode"
  if [ "$mode" = live ]; then env_set IB_GATEWAY_API_PORT 4003; else env_set IB_GATEWAY_API_PORT 4004; fi
  # Live approvals above 10,000 USD need the approver key (MMR's live default): make one unless .env has it.
  if [ "$mode" = live ] && [ -z "$(env_get MMR_APPROVER_KEY)" ]; then
    env_set MMR_APPROVER_KEY "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "generated MMR_APPROVER_KEY in $ENV_FILE: approving above 10,000 USD needs \`mmr approve ID --key <it>\`" >&2
  fi
  echo "wrote $ENV_FILE (mode 600): TWS_USERID, TWS_PASSWORD, IB_ACCOUNT=$account, TRADING_MODE=$mode" >&2
  PROFILE=ib
  compose build
  compose up -d
  wait_healthy
  compose exec -T mmr mmr status
  echo "IB Gateway may be waiting for 2FA: approve the IBKR Mobile notification if one arrived." >&2
}

wait_healthy() {
  local svc id state waited=0
  svc="$(mmr_service)"
  id="$(compose ps -q "$svc")"
  [ -n "$id" ] || die "$svc is not running (./docker.sh -l shows why)"
  echo "waiting up to ${HEALTH_TIMEOUT}s for $svc to be healthy…" >&2
  while :; do
    state="$("${ENGINE[@]}" inspect --format '{{.State.Health.Status}}' "$id" 2>/dev/null || echo unknown)"
    [ "$state" = healthy ] && { echo "$svc is healthy" >&2; return 0; }
    [ "$waited" -ge "$HEALTH_TIMEOUT" ] && die "$svc not healthy after ${HEALTH_TIMEOUT}s (state: $state); see ./docker.sh -l"
    sleep 5
    waited=$((waited + 5))
  done
}

sync_code() {
  local svc id
  svc="$(mmr_service)"
  id="$(compose ps -q "$svc")"
  [ -n "$id" ] || die "$svc is not running: start it first (./docker.sh -u)"
  for dir in trader strategies config_defaults; do
    "${ENGINE[@]}" cp "$dir/." "$id:/app/$dir/"
  done
  compose restart "$svc"
  echo "synced trader/, strategies/, config_defaults/ into $svc and restarted it" >&2
}

clean() {
  local force="$1" confirm
  if [ "$force" = 1 ]; then
    echo "This deletes the volumes: MMR's DuckDB stores, config, keys and logs, and the gateway's settings." >&2
    read -r -p 'type "delete volumes" to confirm: ' confirm || true
    [ "$confirm" = "delete volumes" ] || die "not confirmed: nothing deleted"
    "${COMPOSE[@]}" --profile ib --profile sim down --volumes --remove-orphans
  else
    "${COMPOSE[@]}" --profile ib --profile sim down --remove-orphans
    echo "volumes kept (./docker.sh -c --force deletes them)" >&2
  fi
  "${ENGINE[@]}" image rm -f mmr:latest >/dev/null 2>&1 || true
}

# --- main ---------------------------------------------------------------------------------------
action=""
force=0
PROFILE=""
for arg in "$@"; do
  case "$arg" in
    -g|-b|-u|-d|-s|-e|-l|-c|-i)
      [ -z "$action" ] || die "one action at a time ($action and $arg)"
      action="$arg" ;;
    --force) force=1 ;;
    --sim) PROFILE=sim ;;
    --ib) PROFILE=ib ;;
    -h|--help) usage ;;
    *) echo "docker.sh: unknown option $arg" >&2; usage ;;
  esac
done
[ -n "$action" ] || usage
pick_engine

case "$action" in
  -g) guided ;;
  -b) compose build ;;
  -u) compose up -d; wait_healthy ;;
  -d) "${COMPOSE[@]}" --profile ib --profile sim down ;;
  -s) sync_code ;;
  -e) compose exec "$(mmr_service)" bash ;;
  -l) compose logs -f ;;
  -c) clean "$force" ;;
  -i) PROFILE=ib; compose up -d ib-gateway ;;
esac
