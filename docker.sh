#!/usr/bin/env bash
# Docker helper: ./docker.sh build | up | down | logs | status | cli
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-}" in
  build)  docker compose build ;;
  up)     docker compose up -d ;;
  down)   docker compose down ;;
  logs)   docker compose logs -f ;;
  status) docker compose exec mmr mmr status ;;
  cli)    docker compose exec -it mmr mmr ;;
  *) echo "usage: $0 build|up|down|logs|status|cli" >&2; exit 2 ;;
esac
