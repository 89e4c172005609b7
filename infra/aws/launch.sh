#!/usr/bin/env bash
# Start one GPU instance that installs this repository at a commit, points MLflow at the team's
# tracking server, runs one make target and shuts itself down (terminates: see cloud-init.yaml).
#
#   export AWS_KEY_NAME=my-key AWS_SECURITY_GROUP_ID=sg-0123 ML_MLFLOW_TRACKING_URI=http://mlflow.internal:5000
#   infra/aws/launch.sh [--dry-run] [MAKE_TARGET [MAKE_ARGS...]]
#
# Environment (required): AWS_KEY_NAME, AWS_SECURITY_GROUP_ID, ML_MLFLOW_TRACKING_URI.
# Optional: AWS_REGION, AWS_SUBNET_ID, AWS_INSTANCE_TYPE (g5.xlarge), AWS_AMI_ID (default: the
# latest Deep Learning Base GPU AMI for Ubuntu 22.04, looked up in SSM), AWS_VOLUME_GB (200),
# AWS_IAM_INSTANCE_PROFILE, ML_REPO_URL (this clone's origin), ML_COMMIT (HEAD; must be pushed),
# ML_OWNER (tag; $USER). --dry-run prints the user data and the aws command, calls nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"

dry_run=false
if [[ "${1:-}" == "--dry-run" ]]; then
  dry_run=true
  shift
fi
make_target="${1:-smoke}"
shift || true
make_args="$*"

die() { echo "error: $*" >&2; exit 2; }

: "${AWS_KEY_NAME:?set AWS_KEY_NAME (an EC2 key pair name)}"
: "${AWS_SECURITY_GROUP_ID:?set AWS_SECURITY_GROUP_ID (must reach the MLflow server)}"
: "${ML_MLFLOW_TRACKING_URI:?set ML_MLFLOW_TRACKING_URI (the team server, e.g. http://host:5000)}"
instance_type="${AWS_INSTANCE_TYPE:-g5.xlarge}"
volume_gb="${AWS_VOLUME_GB:-200}"
repo_url="${ML_REPO_URL:-$(git -C "$repo_root" remote get-url origin 2>/dev/null || true)}"
commit="${ML_COMMIT:-$(git -C "$repo_root" rev-parse HEAD)}"
owner="${ML_OWNER:-${USER:-unknown}}"
[[ -n "$repo_url" ]] || die "no ML_REPO_URL and this clone has no origin remote"
[[ "$commit" =~ ^[0-9a-f]{7,40}$ ]] || die "ML_COMMIT must be a commit SHA, got '$commit'"
[[ "$make_target" =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad make target '$make_target'"
[[ "$ML_MLFLOW_TRACKING_URI" =~ ^https?:// ]] || die "ML_MLFLOW_TRACKING_URI must be http(s)://"

# cloud-init.yaml with its placeholders filled in: the settings as a shell-quoted env file and
# run-target.sh, both base64 (no quoting survives two languages otherwise).
env_file() {
  printf 'REPO_URL=%q\nCOMMIT=%q\nMLFLOW_TRACKING_URI=%q\nMAKE_TARGET=%q\nMAKE_ARGS=%q\n' \
    "$repo_url" "$commit" "$ML_MLFLOW_TRACKING_URI" "$make_target" "$make_args"
}
render_user_data() {
  local env_b64 run_b64 line
  env_b64="$(env_file | base64 -w0)"
  run_b64="$(base64 -w0 < "$here/run-target.sh")"
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line//@ENV_B64@/$env_b64}"
    line="${line//@RUN_B64@/$run_b64}"
    printf '%s\n' "$line"
  done < "$here/cloud-init.yaml"
}

user_data="$(mktemp)"
trap 'rm -f "$user_data"' EXIT
render_user_data > "$user_data"

ami="${AWS_AMI_ID:-}"
region_args=()
[[ -n "${AWS_REGION:-}" ]] && region_args=(--region "$AWS_REGION")
if [[ -z "$ami" ]]; then
  ssm_name=/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id
  if $dry_run; then
    ami="<latest $ssm_name>"
  else
    ami="$(aws "${region_args[@]}" ssm get-parameter --name "$ssm_name" \
      --query Parameter.Value --output text)"
  fi
fi

name="ml-portfolio-${make_target}-${commit:0:8}"
tags="ResourceType=instance,Tags=[{Key=Name,Value=$name},{Key=project,Value=ml-portfolio},"
tags+="{Key=commit,Value=$commit},{Key=make_target,Value=$make_target},{Key=owner,Value=$owner}]"
cmd=(aws "${region_args[@]}" ec2 run-instances
  --image-id "$ami"
  --instance-type "$instance_type"
  --key-name "$AWS_KEY_NAME"
  --security-group-ids "$AWS_SECURITY_GROUP_ID"
  --instance-initiated-shutdown-behavior terminate
  --block-device-mappings "DeviceName=/dev/sda1,Ebs={VolumeSize=$volume_gb,VolumeType=gp3}"
  --tag-specifications "$tags" "${tags/ResourceType=instance/ResourceType=volume}"
  --user-data "file://$user_data"
  --count 1 --query 'Instances[0].InstanceId' --output text)
[[ -n "${AWS_SUBNET_ID:-}" ]] && cmd+=(--subnet-id "$AWS_SUBNET_ID")
[[ -n "${AWS_IAM_INSTANCE_PROFILE:-}" ]] && cmd+=(--iam-instance-profile "Name=$AWS_IAM_INSTANCE_PROFILE")

if $dry_run; then
  echo "# user data"
  cat "$user_data"
  echo "# command"
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi
instance_id="$("${cmd[@]}")"
echo "launched $instance_id ($instance_type, $name): runs 'make $make_target $make_args' at ${commit:0:12}"
echo "runs land in $ML_MLFLOW_TRACKING_URI; the instance terminates itself when the target ends."
echo "follow it: aws ${region_args[*]} ec2 get-console-output --instance-id $instance_id --latest"
