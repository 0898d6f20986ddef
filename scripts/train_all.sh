#!/usr/bin/env bash
# Retrain the six shipped models on CPU, in the order and with the budgets used for
# the shipped cards (each card records its own exact command). Needs ../shared/data.
# --max-minutes is a time budget: the learning-rate schedule anneals over it, so a
# slower machine trains fewer steps but still finishes its schedule.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for arch in unet sk-unet densenet; do
  case $arch in
    unet) km=25; um=15 ;;
    sk-unet) km=20; um=12 ;;
    densenet) km=25; um=15 ;;
  esac
  $PY -m nervseg.train --arch $arch --task kaggle-bp --size 128 176 --epochs 20 --max-minutes $km --threads 2
  $PY -m nervseg.train --arch $arch --task usgra --size 192 192 --batch-size 8 --epochs 60 --max-minutes $um \
      --threads 2 --init-from kaggle-bp-$arch
done
