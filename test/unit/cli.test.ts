// Bad command lines: one clear error naming the option, a non-zero exit, nothing started.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../helpers/cli';

describe('smartcity command line', () => {
  const cases: [string[], RegExp][] = [
    [['simulate', '--vehicles', '0'], /--vehicles "0": must be greater than 0/],
    [['simulate', '--vehicles', 'many'], /--vehicles "many": must be a number/],
    [['simulate', '--speedup=-2'], /--speedup "-2": must be greater than 0/],
    [['simulate', '--duration', 'soon'], /--duration "soon": must be a duration such as 90s, 5m or 1h/],
    [['simulate', '--start', '2026-01-05 07:00'], /--start "2026-01-05 07:00": must be an ISO-8601 time with a zone/],
    [['simulate', '--as-fast-as-possible', '--start', '2999-01-01T00:00:00Z'], /--start must not be in the future/],
    [['simulate', '--duration', '5m', '--until-arrival'], /--until-arrival and --duration exclude each other/],
    [['simulate', '--route', '51.5,-0.12'], /--route: .*at least 2/i],
    [['simulate', '--turbo'], /Unknown option '--turbo'/],
    [['stack', 'sideways'], /unknown stack action "sideways"/],
    [['launch'], /unknown command "launch"/],
  ];
  for (const [args, message] of cases) {
    test(`\`smartcity ${args.join(' ')}\` exits 2 with a clear error`, () => {
      const result = runCli(args);
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, message);
    });
  }

  test('a malformed setting exits 2 naming the variable', () => {
    const result = runCli(['stack', 'status'], { SMARTCITY_KAFKA_PORT: 'x' });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /SMARTCITY_KAFKA_PORT="x" is not a number/);
  });

  test('--help shows a command\'s options and exits 0', () => {
    const result = runCli(['simulate', '--help']);
    assert.equal(result.status, 0);
    assert.match(result.stdout, /--as-fast-as-possible/);
  });
});
