#!/usr/bin/env bash
# Runs on the instance (installed by cloud-init.yaml as /usr/local/bin/ml-portfolio-run):
# clone the repository at COMMIT, `make setup`, run MAKE_TARGET with MLFLOW_TRACKING_URI set to
# the team's server, then power off (launch.sh starts instances that terminate on shutdown).
# Settings come from /etc/ml-portfolio.env (REPO_URL, COMMIT, MLFLOW_TRACKING_URI, MAKE_TARGET,
# MAKE_ARGS), written by launch.sh.
set -uo pipefail

env_file="${ML_PORTFOLIO_ENV:-/etc/ml-portfolio.env}"
workdir="${ML_PORTFOLIO_DIR:-/opt/ml-portfolio}"
# shellcheck source=/dev/null
. "$env_file"
export MLFLOW_TRACKING_URI

# MAKE_ARGS holds key=value words (DATA=/data/isic ARGS=...), split on spaces.
read -ra make_args <<< "${MAKE_ARGS:-}"
status=0
git clone --quiet "$REPO_URL" "$workdir" &&
  cd "$workdir" &&
  git checkout --quiet --detach "$COMMIT" &&
  make setup PYTHON=python3.11 &&
  make "$MAKE_TARGET" "${make_args[@]}" || status=$?
echo "ml-portfolio: make $MAKE_TARGET at $COMMIT exited with $status"
if [[ "${ML_PORTFOLIO_NO_SHUTDOWN:-}" != 1 ]]; then
  shutdown -h +1 "ml-portfolio: make $MAKE_TARGET finished ($status)"
fi
exit "$status"
