#!/bin/bash
# usage: measure.sh LABEL  -- runs the hunt's cases on the code in $PWD (a checkout), fresh store per run
label=$1
R=${OUT:-/tmp/genrec-odd-measure}/$label; rm -rf $R; mkdir -p $R
export GENREC_STORE_DIR=$R/store GENREC_DATABASE_URL=sqlite:///$R/db.sqlite GENREC_DATA_DIR=${GENREC_DATA_DIR:-../shared/data} OMP_NUM_THREADS=1 PYTHONPATH=$PWD
G="${PY:-.venv/bin/python} -m app.cli"
D=${DATA:-/tmp/genrec-odd-data}
for f in base dups; do
  echo "== train popularity $f.csv"; $G train --model popularity --data $D/$f.csv 2>&1 | tail -1
  echo "== train ease $f.csv"; $G train --model ease --data $D/$f.csv 2>&1 | tail -1
  echo "== train biased-mf $f.csv"; $G train --model biased-mf --data $D/$f.csv --set epochs=20 2>&1 | tail -1
done
echo "== evaluate popularity@2 (dups.csv)"; $G evaluate --model popularity@2 --data $D/dups.csv 2>&1 | tail -8
echo "== evaluate biased-mf@2 (dups.csv)"; $G evaluate --model biased-mf@2 --data $D/dups.csv 2>&1 | tail -8
for f in base dups; do
  echo "== tune topk $f.csv"; $G tune --data $D/$f.csv --models popularity,ease --trials 8 --budget-minutes 1 --plot $R/p.png --json > $R/tune_$f.json 2>$R/tune_$f.err
  ${PY:-.venv/bin/python} -c "import json,sys; r=json.load(open('$R/tune_$f.json')); print(r['metric'], [(x['model'], round(x['value'],4)) for x in r['leaderboard']])"
done
for f in ratings01 ratings01_tail; do
  echo "== tune ratings $f.csv"; $G tune --data $D/$f.csv --task ratings --models biased-mf,pmf --trials 10 --budget-minutes 1 --seed 0 --plot $R/p.png --json > $R/tune_$f.json 2>$R/tune_$f.err
  ${PY:-.venv/bin/python} -c "import json,sys; r=json.load(open('$R/tune_$f.json')); print(r['metric'], [(x['model'], round(x['value'],4)) for x in r['leaderboard']])"
  ${PY:-.venv/bin/python} -c "import json; r=json.load(open('$R/tune_$f.json')); print('refit checked fit (gate candidate) rmse', round(r['gate']['candidate'], 4))"
  echo "== train biased-mf $f.csv"; $G train --model biased-mf --data $D/$f.csv --set epochs=20 2>&1 | tail -1
done
