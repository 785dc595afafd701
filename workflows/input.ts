// Parsing at the edge of every workflow: inputs, signal payloads and carried state are checked
// with zod, so a bad value fails once with a message naming the field instead of surfacing as an
// `undefined` three activities later.
import { ApplicationFailure } from '@temporalio/workflow';
import { z } from 'zod';

/** Failure type of a workflow started with an input it cannot use. */
export const INVALID_INPUT = 'InvalidInput';

export function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : 'input'}: ${issue.message}`).join('; ');
}

/** Parses a workflow's input; no argument and `null` mean `{}` (every default), as the Web UI sends. */
export function parseInput<S extends z.ZodType>(workflow: string, schema: S, raw: unknown): z.output<S> {
  const result = schema.safeParse(raw ?? {});
  if (!result.success) throw ApplicationFailure.nonRetryable(`invalid ${workflow} input: ${describeIssues(result.error)}`, INVALID_INPUT);
  return result.data;
}

// Local times would depend on the worker's time zone, which replay must not: an offset is required.
const dateTime = z.iso.datetime({ offset: true });
const date = z.iso.date();

/** An ISO-8601 time with a zone (or a date, meaning its UTC midnight), parsed to epoch milliseconds. */
export const isoTime = z
  .string()
  .refine((s) => dateTime.safeParse(s).success || date.safeParse(s).success, {
    error: 'expected an ISO-8601 time with a zone, e.g. 2024-05-01T12:00:00Z (or a date, 2024-05-01)',
  })
  .transform((s) => Date.parse(s));

export const iso = (ms: number): string => new Date(ms).toISOString();
