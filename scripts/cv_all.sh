#!/usr/bin/env bash
# The fair comparison, for a GPU session: grouped 5-fold cross-validation of U-Net, DenseNet and
# SK-U-Net with ONE recipe per task (identical flags for the three architectures), the final
# models on all non-sample data with the same recipe, then the summaries and the card blocks.
#
#   scripts/cv_all.sh                          # everything, kaggle-bp first (usgra starts from it)
#   STEP=cv TASKS=kaggle-bp ARCHS=unet scripts/cv_all.sh     # one piece (resumable: trained folds are reused)
#   DRY=1 scripts/cv_all.sh                    # print the commands only
#
# Budgets are in epochs, not minutes, so the recipe is the same on any hardware. No epoch is
# chosen on a fold's test images: the train CLI's --fold mode trains a fixed budget and only
# reports on the held-out fold. Needs the train CLI's --split-file/--fold and ../shared/data.
# Recipe choice (README, "What was tried on usgra"): per-image Dice + CE, strong augmentation with
# a weight EMA of 0.99, usgra at 256 px, usgra initialised from the kaggle-bp model of the same
# architecture (the data sets are disjoint, so the kaggle-bp model trained on all its data is fair).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TASKS=${TASKS:-"kaggle-bp usgra"}
ARCHS=${ARCHS:-$($PY -c "from nervseg.models.cards import ARCHITECTURES; print(*ARCHITECTURES)")}  # the registry's
STEP=${STEP:-all}  # folds | cv | final | summary | all
RUN=""
[[ ${DRY:-0} == 1 ]] && RUN="echo +"
LOGS=runs/cv/logs
mkdir -p "$LOGS"

COMMON="--loss image-dice-ce --augment strong --ema 0.99 --seed 0"
recipe() {  # recipe TASK ARCH: the task's flags; only --init-from names the architecture
  case $1 in
    kaggle-bp) echo "--size 128 176 --batch-size 16 --epochs 12 --lr 2e-3 --empty-oversample 4 $COMMON" ;;
    usgra) echo "--size 256 256 --batch-size 8 --epochs 120 --lr 1e-3 $COMMON --init-from kaggle-bp-$2" ;;
  esac
}

FOLDS=${FOLDS:-"0 1 2 3 4"}
# Run "$@" ARCH (and FOLD, when per_fold is 1) for every architecture (and fold) at once: small
# models leave the GPU idle and augmentation is CPU-bound, so separate single-thread processes are
# the speed-up (a GPU machine here has 16 cores). Fails if any of them fails; logs in runs/cv/logs.
parallel() {
  local name=$1 per_fold=$2; shift 2
  local pids=() arch fold list
  for arch in $ARCHS; do
    list="-"; [[ $per_fold == 1 ]] && list=$FOLDS
    for fold in $list; do
      local args=("$arch") log="$LOGS/$name-$arch.log"
      [[ $fold != - ]] && args+=("$fold") && log="$LOGS/$name-$arch-fold$fold.log"
      if [[ -n $RUN ]]; then "$@" "${args[@]}"; continue; fi
      OMP_NUM_THREADS=1 "$@" "${args[@]}" > "$log" 2>&1 &
      pids+=($!)
    done
  done
  for pid in "${pids[@]+"${pids[@]}"}"; do wait "$pid"; done
}
cv_one() { $RUN $PY -m nervseg.cv run --task "$1" --arch "$2" --folds "$3" --recipe-args "$(recipe "$1" "$2")"; }
final_one() {
  # shellcheck disable=SC2046
  $RUN $PY -m nervseg.train --task "$1" --arch "$2" --split-file "splits/$1-folds.json" $(recipe "$1" "$2") --out models --runs runs/final
}
need_new_kaggle() {  # usgra starts from the kaggle-bp models trained with the common recipe
  local arch
  [[ -n $RUN ]] && return 0
  for arch in $ARCHS; do
    grep -q '"recipe"' "models/kaggle-bp-$arch.json" || {
      echo "models/kaggle-bp-$arch.json has no recipe: run STEP=final TASKS=kaggle-bp first" >&2; exit 1; }
  done
}

if [[ $STEP == folds || $STEP == all ]]; then
  for task in $TASKS; do $RUN $PY -m nervseg.data.folds --task "$task"; done
  git diff --quiet -- splits/ || echo "fold files changed (demo samples?): commit splits/*-folds.json" >&2
fi
for task in $TASKS; do
  [[ $task == usgra && $STEP != summary && $STEP != folds ]] && need_new_kaggle
  if [[ $STEP == cv || $STEP == all ]]; then parallel "cv-$task" 1 cv_one "$task"; fi
  if [[ $STEP == final || $STEP == all ]]; then parallel "final-$task" 0 final_one "$task"; fi
  if [[ $STEP == summary || $STEP == all ]]; then
    $RUN $PY -m nervseg.cv summarise --task "$task"      # splits/<task>-cv-summary.json, splits/<task>-paired.json
    $RUN $PY -m nervseg.cv apply --task "$task"          # cross_validation + presence into models/<task>-*.json
  fi
done
# On a lent machine only $OUT comes back: the fold scores (enough to resume: scored folds are not
# retrained), the fold cards, the logs, the summaries and the cards.
if [[ -n ${OUT:-} && -z $RUN ]]; then
  find runs/cv \( -name scores.csv -o -name '*.json' -o -name '*.log' \) -not -path '*/ckpt/*' \
    -exec cp --parents {} "$OUT"/ \;
  cp --parents splits/*.json models/*.json models/*.safetensors "$OUT"/
fi
echo "done: commit models/, splits/ and refresh the README table (scripts/model_table.py)"
