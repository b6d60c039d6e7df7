#!/usr/bin/env bash
# Every check and test of both languages; the last line is the combined count: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p .pift/test-logs
failed_checks=0

echo "== typecheck and lint"
npx --no-install tsc --noEmit -p . || failed_checks=$((failed_checks + 1))
npx --no-install eslint . || failed_checks=$((failed_checks + 1))

echo "== python tests (trainer)"
.venv/bin/python -m pytest trainer/tests -q -p no:cacheprovider 2>&1 | tee .pift/test-logs/pytest.log
py_summary=$(grep -E '(passed|failed|error)' .pift/test-logs/pytest.log | tail -1)
py_passed=$(grep -oE '[0-9]+ passed' <<<"$py_summary" | grep -oE '[0-9]+' || echo 0)
py_failed=$(( $(grep -oE '[0-9]+ failed' <<<"$py_summary" | grep -oE '[0-9]+' || echo 0) + $(grep -oE '[0-9]+ errors?' <<<"$py_summary" | grep -oE '[0-9]+' || echo 0) ))

echo "== typescript tests"
npx --no-install mocha 'test/**/*.test.ts' 2>&1 | tee .pift/test-logs/mocha.log
ts_status=${PIPESTATUS[0]}
ts_passed=$(grep -oE '^ *[0-9]+ passing' .pift/test-logs/mocha.log | grep -oE '[0-9]+' || echo 0)
ts_failed=$(grep -oE '^ *[0-9]+ failing' .pift/test-logs/mocha.log | grep -oE '[0-9]+' || echo 0)
# A crash before mocha's summary still has to count as a failure.
if [ "$ts_status" -ne 0 ] && [ "$ts_failed" -eq 0 ]; then ts_failed=1; fi

passed=$((py_passed + ts_passed))
failed=$((py_failed + ts_failed + failed_checks))
[ "$failed_checks" -gt 0 ] && echo "($failed_checks of typecheck/lint failed, counted as failures)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
