#!/usr/bin/env bash
# Trains on a Cloud TPU VM pod slice: copies this checkout to every worker,
# installs, and starts the same command on all of them at once (one JAX
# process per worker; jax.distributed finds the coordinator itself).
#
#   launch/tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.key=value ...]
#   launch/tpu_pod.sh my-v4-32 us-central2-b configs/lm_transformer.py \
#       /mnt/shared/runs/lm --config.precision.compute=bfloat16
#
# WORKDIR must be one directory that every worker sees (an NFS/Filestore
# mount, or a bucket mounted with gcsfuse): orbax writes each checkpoint from
# all processes into it, and a re-run of this command resumes from it.
# The default mesh is data-parallel over every chip; pass
# --config.mesh='(("data",-1),("fsdp",4),("tensor",1))' to shard the model.
set -euo pipefail
if [[ $# -lt 4 ]]; then
  sed -n '2,15p' "$0"; exit 2
fi
TPU=$1 ZONE=$2 CONFIG=$3 WORKDIR=$4; shift 4
EXTRA=$(printf ' %q' "$@")
ROOT=$(cd "$(dirname "$0")/.." && pwd)

gcloud compute tpus tpu-vm scp --zone="$ZONE" --worker=all --recurse \
  "$ROOT" "$TPU":~/accel
gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all --command="
  set -e; cd ~/accel
  python3 -m venv .venv-tpu && . .venv-tpu/bin/activate
  pip install -q -r requirements.txt 'jax[tpu]==0.10.2' && pip install -q --no-deps -e .
  python launch/train.py --multihost --config $CONFIG --workdir $WORKDIR $EXTRA"
