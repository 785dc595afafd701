// The activities a worker registers, bound to the configured target at start-up. Workflows only
// know the PipelineActivities contract (./types), so their histories replay against any target.
import type { Config } from '../config';
import { log } from '../logging';
import { EventProducer, type ProducerStats } from '../producers/event-producer';
import { awsActivities } from './aws';
import { catalogActivities } from './catalog';
import { kafkaActivities } from './kafka';
import { queryActivities } from './queries';
import { sparkActivities } from './spark';
import type { PipelineActivities } from './types';
import { warehouseActivities } from './warehouse';

export type { PipelineActivities } from './types';

export interface ActivitySet {
  activities: PipelineActivities;
  /** Releases what the activities hold (the Kafka producer, curate jobs left running); call after the worker stopped. */
  close(): Promise<void>;
  /** The shared producer's counts (for the worker's metrics); undefined until a journey connected it. */
  producerStats: () => ProducerStats | undefined;
}

export function createActivities(config: Config): ActivitySet {
  // One producer per worker, shared by every chunk of every fleet: batching works across them.
  let producer: Promise<EventProducer> | undefined;
  let connected: EventProducer | undefined;
  const producerStats = () => connected?.stats();
  const sharedProducer = () =>
    (producer ??= (async () => {
      // kafkajs's lines go to the worker's logger, in its format (SMARTCITY_LOG_FORMAT).
      const p = new EventProducer(config, { client: { log: (line) => log.warn(line) } });
      await p.connect();
      connected = p;
      return p;
    })().catch((err: unknown) => {
      producer = undefined; // the next activity attempt connects afresh
      throw err;
    }));
  const closeProducer = async () => {
    if (producer) await (await producer).close();
  };
  if (config.target === 'aws') {
    // The fleet still produces into Kafka (MSK / Confluent Cloud, TLS + SASL from the config).
    const aws = awsActivities(config);
    return {
      activities: { ...kafkaActivities(sharedProducer), ...aws.activities },
      close: async () => {
        await closeProducer();
        await aws.close();
      },
      producerStats,
    };
  }
  const spark = sparkActivities(config);
  const activities: PipelineActivities = {
    ...kafkaActivities(sharedProducer),
    ...spark.activities,
    ...catalogActivities(config),
    ...warehouseActivities(config),
    ...queryActivities(config),
  };
  return {
    activities,
    close: async () => {
      await spark.close();
      await closeProducer();
    },
    producerStats,
  };
}
