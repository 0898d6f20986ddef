#!/usr/bin/env bash
# Retrain the six shipped models on CPU, in the order and with the budgets used for
# the shipped cards (each card records its own exact command). Needs ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for arch in unet sk-unet densenet; do
  case $arch in
    unet) ke=6; km=19; ue=20; um=11 ;;
    sk-unet) ke=7; km=16; ue=20; um=9 ;;
    densenet) ke=5; km=19; ue=16; um=13 ;;
  esac
  $PY -m nervseg.train --arch $arch --task kaggle-bp --size 128 176 --epochs $ke --max-minutes $km --threads 2
  $PY -m nervseg.train --arch $arch --task usgra --size 192 192 --batch-size 8 --epochs $ue --max-minutes $um \
      --threads 2 --init-from kaggle-bp-$arch
done
