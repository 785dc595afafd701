// Error classification for every AWS call, in one place. An SDK error becomes an activity
// failure here and nowhere else: throttling, 5xx, network failures and concurrency limits are
// retryable (the activity's retry policy backs off); permissions, missing resources and invalid
// requests fail fast, with a message that says what to fix, because retrying cannot help.
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';

export type AwsErrorKind = 'throttled' | 'transient' | 'busy' | 'access' | 'not-found' | 'invalid' | 'unknown';

export interface AwsErrorClass {
  kind: AwsErrorKind;
  code: string;
  message: string;
  retryable: boolean;
}

const THROTTLED = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'ProvisionedThroughputExceededException',
  'SlowDown',
  'BandwidthLimitExceeded',
  'PriorRequestNotComplete',
  'EC2ThrottledException',
]);

/** The service is up but at a concurrency limit of ours: wait and try again. */
const BUSY = new Set([
  'ConcurrentRunsExceededException',
  'ActiveStatementsExceededException',
  'ActiveSessionsExceededException',
  'CrawlerRunningException',
  'ConcurrentModificationException',
  'ResourceNotReadyException',
  'OperationAbortedException',
]);

const TRANSIENT = new Set([
  'InternalServiceException',
  'InternalServerException',
  'InternalServerError',
  'InternalFailure',
  'InternalError',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'ServiceFailure',
  'OperationTimeoutException',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'NetworkingError',
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

const ACCESS = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'UnauthorizedOperation',
  'UnauthorizedException',
  'AuthorizationError',
  'NotAuthorized',
  'Forbidden',
]);

/** Credentials missing, invalid or expired: a matter of the worker's identity, not of its policy. */
const CREDENTIALS = new Set([
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'ExpiredTokenException',
  'MissingAuthenticationToken',
  'IncompleteSignature',
  'CredentialsProviderError',
]);

const NOT_FOUND = new Set([
  'EntityNotFoundException',
  'ResourceNotFoundException',
  'ResourceNotFound',
  'NoSuchBucket',
  'NoSuchKey',
  'NotFound',
  'NoSuchEntity',
  'JobNotFound',
]);

const INVALID = new Set([
  'ValidationException',
  'ValidationError',
  'InvalidInputException',
  'InvalidRequestException',
  'InvalidParameterException',
  'InvalidParameterValueException',
  'InvalidParameterCombination',
  'InvalidArgumentException',
  'InvalidArgument',
  'BadRequestException',
  'MalformedQueryString',
  'IdempotentParameterMismatchException',
  'ResourceNumberLimitExceededException',
  'ServiceQuotaExceededException',
]);

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  Code?: unknown;
  message?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  $retryable?: { throttling?: unknown };
}

function codeOf(e: SdkErrorShape): string {
  // Node network errors carry their errno in `code` (ECONNRESET) and a generic name (Error).
  if (typeof e.code === 'string' && /^E[A-Z_]+$/.test(e.code)) return e.code;
  for (const c of [e.Code, e.name, e.code]) if (typeof c === 'string' && c !== '' && c !== 'Error') return c;
  return 'Error';
}

export function classifyAwsError(err: unknown): AwsErrorClass {
  const e: SdkErrorShape = typeof err === 'object' && err !== null ? err : {};
  const code = codeOf(e);
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : String(err);
  const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
  const is = (kind: AwsErrorKind, retryable: boolean): AwsErrorClass => ({ kind, code, message, retryable });
  if (THROTTLED.has(code) || e.$retryable?.throttling === true || status === 429) return is('throttled', true);
  if (BUSY.has(code)) return is('busy', true);
  if (ACCESS.has(code) || CREDENTIALS.has(code) || code.startsWith('AccessDenied')) return is('access', false);
  if (NOT_FOUND.has(code) || code.startsWith('NoSuch')) return is('not-found', false);
  if (INVALID.has(code) || code.startsWith('Invalid')) return is('invalid', false);
  if (TRANSIENT.has(code) || e.$fault === 'server' || (status !== undefined && status >= 500)) return is('transient', true);
  if (status === 403) return is('access', false);
  if (status === 404) return is('not-found', false);
  // Any other 4xx the service blames on the request: repeating the same request cannot succeed.
  if (e.$fault === 'client' || (status !== undefined && status >= 400)) return is('unknown', false);
  return is('unknown', true);
}

/** Splits 'glue:StartJobRun on job smartcity-curate' into the IAM action and the resource. */
function parseAction(action: string): { iamAction: string; resource: string } {
  const at = action.indexOf(' on ');
  return at < 0 ? { iamAction: action, resource: 'its resource' } : { iamAction: action.slice(0, at), resource: action.slice(at + 4) };
}

function advice(c: AwsErrorClass, action: string): string {
  const { iamAction, resource } = parseAction(action);
  switch (c.kind) {
    case 'throttled':
      return 'AWS throttled the request; it is retried with backoff. If it persists, lower the request rate or ask for a higher quota.';
    case 'busy':
      return 'a concurrency limit was reached (runs, statements or sessions already active); it is retried with backoff. If it persists, raise the limit (e.g. the Glue job\'s MaxConcurrentRuns) or let the running work finish.';
    case 'transient':
      return 'AWS returned a server error or the network failed; it is retried.';
    case 'access':
      return CREDENTIALS.has(c.code)
        ? 'the worker\'s AWS credentials are missing, invalid or expired: fix the credentials the default chain finds (AWS_PROFILE, AWS_* environment variables, or the instance/task role).'
        : `the worker's IAM identity is not allowed ${iamAction} on ${resource}: add ${iamAction} for that resource to the worker policy (infra/ defines it) and redeploy.`;
    case 'not-found':
      return `${resource} does not exist: check the setting that names it (SMARTCITY_* variables or the "aws" section of SMARTCITY_CONFIG) and that the infra/ stack is deployed in the configured region and account.`;
    case 'invalid':
      return 'AWS rejected the request as invalid; fix the arguments or settings named in the message, retrying will not help.';
    case 'unknown':
      return c.retryable ? 'unexpected error; it is retried.' : 'AWS rejected the request; retrying will not help.';
  }
}

/** The one place an SDK error becomes an activity failure: type `Aws.<code>`, retryable or not, naming the action and what to fix. */
export function awsFailure(err: unknown, action: string): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const c = classifyAwsError(err);
  return ApplicationFailure.create({
    type: `Aws.${c.code}`,
    message: `${action} failed with ${c.code}: ${c.message} — ${advice(c, action)}`,
    nonRetryable: !c.retryable,
    ...(err instanceof Error && { cause: err }),
  });
}

/** Runs one SDK call; any error goes through awsFailure (a cancellation passes through unchanged). */
export async function awsCall<T>(action: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CancelledFailure) throw err;
    throw awsFailure(err, action);
  }
}
