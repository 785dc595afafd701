import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { awsCall, awsFailure, classifyAwsError } from '../../activities/aws/errors';
import { sdkError } from '../helpers/aws-mock';

const network = (code: string) => Object.assign(new Error(`connect ${code} 10.0.0.1:443`), { code });

describe('classifyAwsError', () => {
  const cases: Array<[string, unknown, string, boolean]> = [
    ['ThrottlingException', sdkError('ThrottlingException'), 'throttled', true],
    ['TooManyRequestsException', sdkError('TooManyRequestsException'), 'throttled', true],
    ['RequestLimitExceeded', sdkError('RequestLimitExceeded'), 'throttled', true],
    ['ProvisionedThroughputExceededException', sdkError('ProvisionedThroughputExceededException'), 'throttled', true],
    ['S3 SlowDown (503)', sdkError('SlowDown', { status: 503 }), 'throttled', true],
    ['an unknown code with HTTP 429', sdkError('Whatever', { status: 429 }), 'throttled', true],
    ['ConcurrentRunsExceededException', sdkError('ConcurrentRunsExceededException'), 'busy', true],
    ['ActiveStatementsExceededException', sdkError('ActiveStatementsExceededException'), 'busy', true],
    ['ActiveSessionsExceededException', sdkError('ActiveSessionsExceededException'), 'busy', true],
    ['InternalServiceException', sdkError('InternalServiceException', { fault: 'server' }), 'transient', true],
    ['an unknown code with HTTP 502', sdkError('BadGateway', { status: 502 }), 'transient', true],
    ['an unknown code with $fault server', Object.assign(new Error('x'), { name: 'Odd', $fault: 'server' }), 'transient', true],
    ['TimeoutError', Object.assign(new Error('socket timed out'), { name: 'TimeoutError' }), 'transient', true],
    ['ECONNRESET', network('ECONNRESET'), 'transient', true],
    ['ETIMEDOUT', network('ETIMEDOUT'), 'transient', true],
    ['AccessDeniedException', sdkError('AccessDeniedException'), 'access', false],
    ['AccessDenied (S3, 403)', sdkError('AccessDenied', { status: 403 }), 'access', false],
    ['ExpiredTokenException', sdkError('ExpiredTokenException'), 'access', false],
    ['EntityNotFoundException', sdkError('EntityNotFoundException'), 'not-found', false],
    ['ResourceNotFoundException', sdkError('ResourceNotFoundException'), 'not-found', false],
    ['NoSuchBucket', sdkError('NoSuchBucket', { status: 404 }), 'not-found', false],
    ['ValidationException', sdkError('ValidationException'), 'invalid', false],
    ['InvalidInputException', sdkError('InvalidInputException'), 'invalid', false],
    ['InvalidRequestException', sdkError('InvalidRequestException'), 'invalid', false],
    ['an unknown 4xx code', sdkError('Teapot', { status: 418 }), 'unknown', false],
    ['a plain Error', new Error('boom'), 'unknown', true],
  ];
  for (const [label, err, kind, retryable] of cases) {
    test(`${label} is ${kind}, ${retryable ? 'retryable' : 'non-retryable'}`, () => {
      const c = classifyAwsError(err);
      assert.equal(c.kind, kind);
      assert.equal(c.retryable, retryable);
    });
  }

  test('the code of a network error is its errno, the message is kept', () => {
    assert.deepEqual(classifyAwsError(network('ECONNRESET')), { kind: 'transient', code: 'ECONNRESET', message: 'connect ECONNRESET 10.0.0.1:443', retryable: true });
  });
});

describe('awsFailure', () => {
  test('AccessDenied names the missing IAM action, the resource and where the policy lives', () => {
    const f = awsFailure(sdkError('AccessDeniedException', { message: 'User is not authorized' }), 'glue:StartJobRun on job smartcity-curate');
    assert.equal(f.type, 'Aws.AccessDeniedException');
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /^glue:StartJobRun on job smartcity-curate failed with AccessDeniedException: User is not authorized/);
    assert.match(f.message, /add glue:StartJobRun for that resource to the worker policy \(infra\/ defines it\)/);
  });

  test('expired credentials point at the credential chain, not the policy', () => {
    const f = awsFailure(sdkError('ExpiredTokenException'), 's3:GetObject on s3://b/k');
    assert.match(f.message, /credentials are missing, invalid or expired/);
    assert.doesNotMatch(f.message, /worker policy/);
  });

  test('a missing entity names the resource and the setting to check', () => {
    const f = awsFailure(sdkError('EntityNotFoundException', { message: 'Job not found' }), 'glue:StartJobRun on job smartcity-curate');
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /job smartcity-curate does not exist: check the setting that names it/);
  });

  test('a validation error fails fast saying retrying will not help', () => {
    const f = awsFailure(sdkError('ValidationException'), 'emr:AddJobFlowSteps on cluster j-1');
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /retrying will not help/);
  });

  test('throttling, 5xx and concurrency limits are retryable failures typed by their code', () => {
    for (const [err, type] of [
      [sdkError('ThrottlingException'), 'Aws.ThrottlingException'],
      [sdkError('ServiceUnavailable', { status: 503 }), 'Aws.ServiceUnavailable'],
      [sdkError('ConcurrentRunsExceededException'), 'Aws.ConcurrentRunsExceededException'],
    ] as const) {
      const f = awsFailure(err, 'glue:StartJobRun on job j');
      assert.equal(f.type, type);
      assert.equal(f.nonRetryable, false);
    }
  });

  test('an ApplicationFailure (evidence of a failed run) passes through unchanged', () => {
    const original = ApplicationFailure.nonRetryable('run failed', 'Glue.JobRunFailed');
    assert.equal(awsFailure(original, 'glue:GetJobRun on job j'), original);
  });
});

describe('awsCall', () => {
  test('returns the call result', async () => {
    assert.equal(await awsCall('glue:GetJob on job j', () => Promise.resolve(42)), 42);
  });

  test('turns an SDK error into the classified failure', async () => {
    await assert.rejects(awsCall('athena:StartQueryExecution on workgroup primary', () => Promise.reject(sdkError('TooManyRequestsException'))), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, 'Aws.TooManyRequestsException');
      assert.equal(err.nonRetryable, false);
      return true;
    });
  });

  test('lets a cancellation through unchanged', async () => {
    const cancelled = new CancelledFailure('CANCELLED');
    await assert.rejects(awsCall('glue:GetJobRun on job j', () => Promise.reject(cancelled)), (err: unknown) => err === cancelled);
  });
});
