import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GetObjectCommand, ListObjectsV2Command, type GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { checkpointRoot, curateSummaryKey, latestLanding, layerRoot, readJson, scriptUri } from '../../activities/aws/s3';
import { mockedAwsDeps, sdkError } from '../helpers/aws-mock';

const body = (text: string) => ({ transformToString: () => Promise.resolve(text) }) as unknown as GetObjectCommandOutput['Body'];

describe('S3 lake layout and landing checks', () => {
  test('one bucket per layer, the local folder names inside', () => {
    const { deps } = mockedAwsDeps();
    assert.equal(layerRoot(deps.aws, 'raw'), 's3://sc-raw/raw/');
    assert.equal(layerRoot(deps.aws, 'quarantine'), 's3://sc-quarantine/quarantine/');
    assert.equal(layerRoot(deps.aws, 'curated'), 's3://sc-curated/curated/');
    assert.equal(checkpointRoot(deps.aws, 'ingest'), 's3://sc-checkpoints/checkpoints/ingest/');
    assert.equal(scriptUri(deps.aws, 'curateScript'), 's3://sc-artifacts/spark/jobs/curate.py');
  });

  test('the curate summary key is the one the job gives a window by default', () => {
    assert.equal(curateSummaryKey({ from: '2026-03-02T09:00:00Z', to: '2026-03-02T10:00:00.5Z' }), '_runs/curate/20260302T090000000000Z_20260302T100000500000Z.json');
  });

  test('latestLanding reads every source and hour partition of the window, through every page', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.s3.on(ListObjectsV2Command).resolves({ Contents: [] });
    mocks.s3
      .on(ListObjectsV2Command, { Prefix: 'curated/weather/date=2026-03-02/hour=23/' })
      .resolvesOnce({ Contents: [{ LastModified: new Date('2026-03-03T00:10:00Z') }], IsTruncated: true, NextContinuationToken: 'p2' })
      .resolves({ Contents: [{ LastModified: new Date('2026-03-03T00:20:00Z') }, { LastModified: new Date('2026-03-03T00:01:00Z') }] });
    const latest = await latestLanding(deps, 'curated', { from: '2026-03-02T23:30:00Z', to: '2026-03-03T00:30:00Z' });
    assert.equal(latest?.toISOString(), '2026-03-03T00:20:00.000Z');
    const prefixes = mocks.s3.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input.Prefix);
    assert.equal(new Set(prefixes).size, 10); // 5 sources × 2 hours
    assert.ok(prefixes.includes('curated/vehicle/date=2026-03-03/hour=00/'));
    // Both pages of the hour whose listing was truncated; the newest object is on the second.
    assert.equal(prefixes.filter((p) => p === 'curated/weather/date=2026-03-02/hour=23/').length, 2);
  });

  test('latestLanding is undefined when nothing landed', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.s3.on(ListObjectsV2Command).resolves({});
    assert.equal(await latestLanding(deps, 'raw', { from: '2026-03-02T09:00:00Z', to: '2026-03-02T10:00:00Z' }), undefined);
  });

  test('readJson parses the object, is undefined for a missing key and fails fast on access denied', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.s3.on(GetObjectCommand, { Key: 'a.json' }).resolves({ Body: body('{"ok":true}') });
    mocks.s3.on(GetObjectCommand, { Key: 'missing.json' }).rejects(sdkError('NoSuchKey', { status: 404 }));
    mocks.s3.on(GetObjectCommand, { Key: 'secret.json' }).rejects(sdkError('AccessDenied', { status: 403 }));
    assert.deepEqual(await readJson(deps, 'sc-artifacts', 'a.json'), { ok: true });
    assert.equal(await readJson(deps, 'sc-artifacts', 'missing.json'), undefined);
    await assert.rejects(readJson(deps, 'sc-artifacts', 'secret.json'), (err: unknown) => err instanceof ApplicationFailure && err.nonRetryable && /s3:GetObject on s3:\/\/sc-artifacts\/secret\.json/.test(err.message));
  });
});
