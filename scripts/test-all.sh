#!/usr/bin/env bash
# Every check and test of both languages; the last line is the combined count: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p .pift/test-logs
failed_checks=0

# The trainer's tests run alongside the TypeScript checks and tests: on two cores the wall time is about the longer
# of the two instead of their sum, since most TypeScript tests wait on servers and child processes.
.venv/bin/python -m pytest trainer/tests -q -p no:cacheprovider > .pift/test-logs/pytest.log 2>&1 &
py_pid=$!
trap 'kill "$py_pid" 2>/dev/null' INT TERM

echo "== typecheck and lint"
npx --no-install tsc --noEmit -p . || failed_checks=$((failed_checks + 1))
# The build users deploy workers from compiles without the tests' types (a DOM type once slipped through -p .).
npx --no-install tsc --noEmit -p tsconfig.build.json || failed_checks=$((failed_checks + 1))
npx --no-install eslint . || failed_checks=$((failed_checks + 1))

echo "== typescript tests"
# Mocha runs in PIFT_TEST_GROUPS processes (default 2), each with its own servers, the files dealt out by their
# measured time (scripts/mocha-groups.mjs). Most tests wait on servers and child processes: one group beside pytest
# kept a 2-core machine about 1.35 cores busy (14 min 39 s on a clean clone), two took it to 11 min 38 s.
mapfile -t groups < <(node scripts/mocha-groups.mjs "${PIFT_TEST_GROUPS:-2}")
group_pids=()
for i in "${!groups[@]}"; do
  [ "$i" -eq 0 ] && continue
  # shellcheck disable=SC2086 # a group is a list of file names without spaces
  npx --no-install mocha ${groups[$i]} > ".pift/test-logs/mocha-$i.log" 2>&1 &
  group_pids+=("$!")
done
trap 'kill "$py_pid" "${group_pids[@]}" 2>/dev/null' INT TERM
# shellcheck disable=SC2086
npx --no-install mocha ${groups[0]} 2>&1 | tee .pift/test-logs/mocha-0.log
statuses=("${PIPESTATUS[0]}")
for i in "${!group_pids[@]}"; do
  wait "${group_pids[$i]}"
  statuses+=("$?")
  echo "== typescript tests, group $((i + 2)) of ${#groups[@]}, run alongside"
  cat ".pift/test-logs/mocha-$((i + 1)).log"
done
ts_passed=0
ts_failed=0
for i in "${!groups[@]}"; do
  log=".pift/test-logs/mocha-$i.log"
  group_passed=$(grep -oE '^ *[0-9]+ passing' "$log" | grep -oE '[0-9]+' || echo 0)
  group_failed=$(grep -oE '^ *[0-9]+ failing' "$log" | grep -oE '[0-9]+' || echo 0)
  # A crash before mocha's summary still has to count as a failure.
  if [ "${statuses[$i]}" -ne 0 ] && [ "$group_failed" -eq 0 ]; then group_failed=1; fi
  ts_passed=$((ts_passed + group_passed))
  ts_failed=$((ts_failed + group_failed))
done

echo "== python tests (trainer), run alongside the TypeScript tests"
wait "$py_pid"
py_status=$?
cat .pift/test-logs/pytest.log
py_summary=$(grep -E '(passed|failed|error)' .pift/test-logs/pytest.log | tail -1)
py_passed=$(grep -oE '[0-9]+ passed' <<<"$py_summary" | grep -oE '[0-9]+' || echo 0)
py_failed=$(( $(grep -oE '[0-9]+ failed' <<<"$py_summary" | grep -oE '[0-9]+' || echo 0) + $(grep -oE '[0-9]+ errors?' <<<"$py_summary" | grep -oE '[0-9]+' || echo 0) ))
# Likewise a pytest that died before its summary.
if [ "$py_status" -ne 0 ] && [ "$py_failed" -eq 0 ]; then py_failed=1; fi

passed=$((py_passed + ts_passed))
failed=$((py_failed + ts_failed + failed_checks))
[ "$failed_checks" -gt 0 ] && echo "($failed_checks of typecheck/lint failed, counted as failures)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
