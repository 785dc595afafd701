// The aws target's activities: EMR for the streaming job, Glue for crawls and the curate job,
// Redshift (Data API) for the warehouse, Athena for the lake queries, both for the quality checks.
// One set of SDK clients, shared by every activity of the worker.
import type { Config } from '../../config';
import type { FleetActivities, PipelineActivities } from '../types';
import { athenaActivities } from './athena';
import { createAwsClients, type AwsClients, type AwsDeps } from './clients';
import { emrActivities } from './emr';
import { glueActivities } from './glue';
import { qualityActivities } from './quality';
import { redshiftActivities } from './redshift';

/** Between two status calls of a running job, query or statement. */
const POLL_INTERVAL_MS = 10_000;

export function awsActivities(
  config: Config,
  opts: { pollIntervalMs?: number; clients?: AwsClients } = {},
): { activities: Omit<PipelineActivities, keyof FleetActivities>; close(): Promise<void> } {
  const aws = config.aws;
  if (!aws) throw new Error('awsActivities needs the aws settings: set SMARTCITY_TARGET=aws and its SMARTCITY_* settings');
  const clients = opts.clients ?? createAwsClients(aws);
  const deps: AwsDeps = { config, aws, clients, pollIntervalMs: opts.pollIntervalMs ?? POLL_INTERVAL_MS };
  return {
    activities: { ...emrActivities(deps), ...glueActivities(deps), ...redshiftActivities(deps), ...athenaActivities(deps), ...qualityActivities(deps) },
    close: async () => {
      // Clients passed in belong to the caller (tests), who closes them.
      if (!opts.clients) for (const client of Object.values(clients) as { destroy(): void }[]) client.destroy();
    },
  };
}
