// The tests' one way to wait (test/helpers/until.ts): polling until a probe answers, and a race
// against a timeout that leaves no timer behind (one left behind holds a test file's process open
// until it fires: minutes, in the system tier, before this helper).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NotYet, until, when, within } from '../helpers/until';

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('until', () => {
  test('returns the first value the probe gives, polling until then', async () => {
    let calls = 0;
    assert.equal(await until('the third call', () => (++calls === 3 ? 'done' : undefined), { everyMs: 1 }), 'done');
    assert.equal(calls, 3);
  });

  test('times out naming what it waited for and the last value a probe described', async () => {
    const probe = when(() => 41, (n) => n === 42);
    await assert.rejects(until('the answer', probe, { timeoutMs: 30, everyMs: 5 }), /timed out after [\d.]+ s waiting for the answer; last value: 41/);
  });

  test('fails at once when the probe throws anything but NotYet', async () => {
    let calls = 0;
    const probe = () => {
      calls += 1;
      throw new Error('the worker exited');
    };
    await assert.rejects(until('a value', probe, { timeoutMs: 10_000 }), /the worker exited/);
    assert.equal(calls, 1);
    assert.ok(new NotYet('x') instanceof Error);
  });
});

describe('within', () => {
  test("takes the promise's value when it settles first, and leaves no timer running", async () => {
    const before = timers();
    assert.equal(await within(Promise.resolve('exited'), 60_000, () => 'timeout'), 'exited');
    assert.equal(timers(), before);
  });

  test("takes onTimeout's value (or error) when the time passes first", async () => {
    const never = new Promise<string>(() => {});
    assert.equal(await within(never, 5, () => 'timeout'), 'timeout');
    await assert.rejects(within(never, 5, () => Promise.reject(new Error('no answer'))), /no answer/);
  });
});
