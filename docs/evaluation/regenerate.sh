#!/bin/sh
# Regenerate the committed evaluation reports with the current scoring core.
# Run from the repository root: sh docs/evaluation/regenerate.sh
# Takes ~10 min per report on a busy 2-core machine; the two run in parallel.
set -eu
HS=${HS:-.venv/bin/healthstream}

# CDNOW: a real purchase log, scored on 1997-09-30, outcomes until 1998-06-30.
$HS datasets cdnow --out /tmp/cdnow.ndjson
$HS evaluate --events /tmp/cdnow.ndjson --cutoff 1997-09-30 \
    --config docs/evaluation/cdnow/scorecard.toml --tick-hours 168 \
    --title "healthstream on CDNOW" --notes docs/evaluation/cdnow/selection.txt \
    --json docs/evaluation/cdnow/result.json --report docs/evaluation/cdnow --quiet &
CDNOW=$!

# Simulator: 400 accounts, 240 days, seed 7, scored on 2024-06-30.
$HS simulate --accounts 400 --days 240 --seed 7 --start 2024-01-01 --out /tmp/sim-400x240-s7.ndjson --quiet
$HS evaluate --events /tmp/sim-400x240-s7.ndjson --cutoff 2024-06-30 \
    --title "healthstream on a simulated SaaS" --notes docs/evaluation/simulator/notes.txt \
    --json docs/evaluation/simulator/result.json --report docs/evaluation/simulator --quiet
wait $CDNOW
