#!/bin/bash
# Run a qcbench protocol as a SLURM job array: each array task runs one shard of the cells, all writing into one
# shared results directory (and one shared cache, so crops and SSL pretraining are computed once and reused).
# Submit:   sbatch --array=0-15 docs/cluster/slurm-array.sh protocols/full.yaml
# Progress: npx qcbench status --results /shared/qcbench/results/full      (done / pending / running / failed cells)
# Report:   npx qcbench report --results /shared/qcbench/results/full      (once all tasks have finished)
#
#SBATCH --job-name=qcbench
#SBATCH --cpus-per-task=8
#SBATCH --mem=24G
#SBATCH --time=24:00:00
#SBATCH --output=qcbench-%A_%a.log
# For GPU nodes add:  #SBATCH --gres=gpu:1   and set runtime.execution_provider: cuda in the protocol.
set -euo pipefail
PROTOCOL=${1:?usage: sbatch --array=0-N slurm-array.sh PROTOCOL.yaml}
export QCBENCH_DATA=${QCBENCH_DATA:-/shared/data}            # BBBC022/ and BBBC021/ as the Broad distributes them
export QCBENCH_WEIGHTS=${QCBENCH_WEIGHTS:-/shared/weights}   # ImageNet encoders (qcbench weights check)
WORK=${QCBENCH_WORK:-/shared/qcbench}                         # on a file system every node sees

cd "${SLURM_SUBMIT_DIR}"
# Shards are 0-based: task i of n. A task that dies (node failure, time limit) can simply be resubmitted with the
# same index; finished cells are never recomputed and a dead task's claims go stale after two minutes.
npx qcbench run "$PROTOCOL" \
  --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}" \
  --threads "${SLURM_CPUS_PER_TASK}" \
  --workdir "$WORK" \
  --no-report
