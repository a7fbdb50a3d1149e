#!/usr/bin/env bash
# Deploy forwarder.yaml to every Region of the mesh: one stack "<MeshId>-forwarder" per Region.
#
# The Regions are the MeshRegions item of the chosen environment's parameter_overrides in
# samconfig.toml (the same list the home stack's resync sweeps), plus the home Region. Adding a
# Region is adding it to that one line. CentralBusArn and ReconcilerRoleArn come from the home
# stack's outputs (deploy the home stack first: `sam deploy`).
#
#   scripts/deploy-forwarders.sh [--config-env ENV] [--config-file FILE] [--home-region REGION]
#                                [--central-bus-arn ARN] [--reconciler-role-arn ARN] [--dry-run]
#
# --dry-run prints the commands (a runnable shell script) and runs nothing.
# SAM and AWS name the CLIs (default: sam, aws); PYTHON reads the TOML (default: python3, 3.11+).
set -euo pipefail

cd "$(dirname "$0")/.."

config_file=samconfig.toml
config_env=default
home_region=""
central_bus_arn=""
reconciler_role_arn=""
dry_run=false
SAM=${SAM:-sam}
AWS=${AWS:-aws}
PYTHON=${PYTHON:-python3}

die() { echo "deploy-forwarders: $*" >&2; exit 2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --config-env) [ $# -ge 2 ] || die "$1 needs a value"; config_env=$2; shift 2 ;;
    --config-file) [ $# -ge 2 ] || die "$1 needs a value"; config_file=$2; shift 2 ;;
    --home-region) [ $# -ge 2 ] || die "$1 needs a value"; home_region=$2; shift 2 ;;
    --central-bus-arn) [ $# -ge 2 ] || die "$1 needs a value"; central_bus_arn=$2; shift 2 ;;
    --reconciler-role-arn) [ $# -ge 2 ] || die "$1 needs a value"; reconciler_role_arn=$2; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[ -f "$config_file" ] || die "no config file $config_file"

# Read stack_name, region, MeshId and MeshRegions of the environment; print shell assignments.
settings=$("$PYTHON" - "$config_file" "$config_env" <<'PY'
import re
import shlex
import sys
import tomllib

sys.path.insert(0, "layers/core")  # the one Region-name pattern (names.py: stdlib only)
from resolver_mesh.names import REGION_PATTERN

path, env = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    config = tomllib.load(f)
if not isinstance(config.get(env), dict):
    sys.exit(f"deploy-forwarders: no [{env}.*] environment in {path}")
glob = config[env].get("global", {}).get("parameters", {})
deploy = config[env].get("deploy", {}).get("parameters", {})
overrides = deploy.get("parameter_overrides", [])
if isinstance(overrides, str):
    overrides = shlex.split(overrides)
params = {}
for item in overrides:
    key, _, value = item.partition("=")
    params[key.strip()] = value.strip().strip('"')
regions = [r.strip() for r in params.get("MeshRegions", "").split(",") if r.strip()]
bad = [r for r in regions if not REGION_PATTERN.match(r)]
if bad:
    sys.exit(f"deploy-forwarders: not a Region in MeshRegions of [{env}]: {', '.join(bad)}")
mesh_id = params.get("MeshId", "resolver-mesh")
if not re.fullmatch(r"[A-Za-z0-9-]{1,32}", mesh_id):
    sys.exit(f"deploy-forwarders: bad MeshId {mesh_id!r} in [{env}]")
values = {
    "cfg_stack_name": deploy.get("stack_name") or glob.get("stack_name") or mesh_id,
    "cfg_region": deploy.get("region") or glob.get("region") or "",
    "cfg_mesh_id": mesh_id,
    "cfg_regions": " ".join(regions),
}
for key, value in values.items():
    print(f"{key}={shlex.quote(value)}")
PY
) || exit 2
eval "$settings"

[ -n "$cfg_regions" ] || die "MeshRegions is empty in [$config_env] of $config_file: list the \
mesh's Regions there, e.g. \"MeshRegions=us-east-1,us-east-2,us-west-2\""
home_region=${home_region:-${cfg_region:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}}
[ -n "$home_region" ] || die "the home Region is unknown: pass --home-region, set region in \
[$config_env.global.parameters] of $config_file, or set AWS_REGION"

# The home Region gets a forwarder too (its own calls reach the central bus the same way).
regions=$home_region
for r in $cfg_regions; do
  case " $regions " in *" $r "*) ;; *) regions="$regions $r" ;; esac
done

# Print a command: words that need it in double quotes ($ kept: the dry-run placeholders).
show() {
  local out="" word
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      out+="$word "
    else
      word=${word//\\/\\\\}; word=${word//\"/\\\"}; word=${word//\`/\\\`}
      out+="\"$word\" "
    fi
  done
  echo "${out% }"
}

output_command() {
  echo "$AWS" cloudformation describe-stacks --region "$home_region" --stack-name "$cfg_stack_name" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

echo "# resolver-mesh ${cfg_mesh_id}: forwarders in ${regions// /, } (home stack ${cfg_stack_name} in ${home_region})"
for pair in "CentralBusArn:central_bus_arn:CENTRAL_BUS_ARN" "ReconcilerRoleArn:reconciler_role_arn:RECONCILER_ROLE_ARN"; do
  IFS=: read -r key var placeholder <<<"$pair"
  if [ -z "${!var}" ]; then
    if $dry_run; then
      # shellcheck disable=SC2046
      echo "$placeholder=\$($(show $(output_command "$key")))"
      printf -v "$var" '%s' "\$$placeholder"
    else
      # shellcheck disable=SC2046
      value=$("$AWS" cloudformation describe-stacks --region "$home_region" \
        --stack-name "$cfg_stack_name" \
        --query "Stacks[0].Outputs[?OutputKey=='$key'].OutputValue" --output text)
      [[ -n $value && $value != None ]] || die "stack $cfg_stack_name in $home_region has no \
output $key: deploy the home stack first (sam deploy)"
      printf -v "$var" '%s' "$value"
    fi
  fi
done

status=0
for region in $regions; do
  command=(
    "$SAM" deploy
    --config-env forwarder
    --template-file forwarder.yaml
    --stack-name "${cfg_mesh_id}-forwarder"
    --region "$region"
    --parameter-overrides
    "MeshId=${cfg_mesh_id}"
    "CentralBusArn=${central_bus_arn}"
    "ReconcilerRoleArn=${reconciler_role_arn}"
    --tags "resolver-mesh:owner=${cfg_mesh_id}"
  )
  show "${command[@]}"
  if ! $dry_run; then
    "${command[@]}" || { echo "deploy-forwarders: $region failed" >&2; status=1; }
  fi
done
exit "$status"
