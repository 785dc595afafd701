// Command-line parsing for every smartcity command: node's parseArgs in strict mode (unknown
// options are errors), then zod for the values, so a bad option is one error that names it.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';

export class UsageError extends Error {
  override name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseCommandLine<S extends z.ZodObject>(
  argv: string[],
  options: Options,
  schema: S,
  positionals: { max: number } = { max: 0 },
): { values: z.infer<S>; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: positionals.max > 0 });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  if (parsed.positionals.length > positionals.max) {
    throw new UsageError(`unexpected argument "${parsed.positionals[positionals.max]}"`);
  }
  const result = schema.safeParse(parsed.values);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const name = issue.path.map(String).join('.');
    const given = (parsed.values as Record<string, unknown>)[name];
    throw new UsageError(`--${toKebab(name)}${given === undefined ? '' : ` ${JSON.stringify(given)}`}: ${issue.message}`);
  }
  return { values: result.data, positionals: parsed.positionals };
}

function toKebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** A positive number given as an option string. */
export const positiveNumber = z.coerce.number({ error: 'must be a number' }).positive('must be greater than 0');
export const positiveInt = z.coerce.number({ error: 'must be a number' }).int('must be a whole number').positive('must be greater than 0');
export const nonNegativeInt = z.coerce.number({ error: 'must be a number' }).int('must be a whole number').min(0, 'must be 0 or more');

/** "90s", "5m", "2h", "1500ms" or plain seconds → milliseconds. */
export const duration = z.string().transform((text, ctx) => {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) {
    ctx.addIssue({ code: 'custom', message: 'must be a duration such as 90s, 5m or 1h' });
    return z.NEVER;
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unit;
});

/** An ISO-8601 time with a zone (Z or ±hh:mm) → Date. */
export const isoTime = z.string().transform((text, ctx) => {
  const ok = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text) && !Number.isNaN(Date.parse(text));
  if (!ok) {
    ctx.addIssue({ code: 'custom', message: 'must be an ISO-8601 time with a zone, e.g. 2026-01-01T08:00:00Z' });
    return z.NEVER;
  }
  return new Date(text);
});
