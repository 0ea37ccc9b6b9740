#!/usr/bin/env bash
# Trains on every GPU of one host: one process drives them all through the
# device mesh (no launcher processes, no NCCL set-up by hand).
#
#   launch/multi_gpu.sh CONFIG WORKDIR [--config.key=value ...]
#   launch/multi_gpu.sh configs/lm_transformer.py runs/lm_8gpu \
#       --config.precision.compute=bfloat16 \
#       --config.mesh='(("data",-1),("fsdp",2),("tensor",1))'
#
# The global batch (config.batch_size) is split over the mesh's data and
# fsdp axes and must divide by their product. Re-running resumes.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,12p' "$0"; exit 2
fi
CONFIG=$1 WORKDIR=$2; shift 2
cd "$(dirname "$0")/.."
if [[ ! -f .venv-gpu/.installed ]]; then
  python3 -m venv .venv-gpu
  .venv-gpu/bin/pip install -q -r requirements.txt 'jax[cuda13]==0.10.2'
  .venv-gpu/bin/pip install -q --no-deps -e .
  touch .venv-gpu/.installed
fi
# Overlaps the FSDP all-gathers and gradient reductions with compute.
export XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_latency_hiding_scheduler=true"
exec .venv-gpu/bin/python launch/train.py --config "$CONFIG" \
  --workdir "$WORKDIR" "$@"
