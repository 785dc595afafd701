// The CDK app: `npx cdk deploy` (from infra/, see cdk.json) synthesizes this. Choices come from
// CDK context (-c key=value), parsed here so a bad one is one clear error before anything is built.
import { App } from 'aws-cdk-lib';
import { z } from 'zod';
import { SmartcityStack, type SmartcityStackProps } from './stack';

const contextSchema = z
  .object({
    stackName: z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,63}$/, 'must be a CloudFormation stack name (letters, digits, hyphens)').default('Smartcity'),
    emrSubnetId: z.string().regex(/^subnet-[0-9a-f]+$/, 'must be a subnet id such as subnet-0abc…').optional(),
    emrClusterId: z.string().regex(/^j-[A-Z0-9]+$/, 'must be an EMR cluster id such as j-2AXXXXXXGAPLF').optional(),
    redshiftSubnetIds: z
      .string()
      .transform((s) => s.split(',').map((id) => id.trim()))
      .pipe(z.array(z.string().regex(/^subnet-[0-9a-f]+$/, 'must be comma-separated subnet ids')).min(3, 'needs subnets in at least three availability zones'))
      .optional(),
    redshiftClusterId: z.string().min(1).optional(),
    redshiftDbUser: z.string().min(1).optional(),
    redshiftDatabase: z.string().min(1).default('smartcity'),
    destroyData: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]).default(false),
    athenaBytesScannedCutoff: z.coerce.number().int().min(10 * 1024 ** 2, 'Athena needs at least 10 MB').optional(),
  })
  .superRefine((c, ctx) => {
    if ((c.emrSubnetId === undefined) === (c.emrClusterId === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['emrSubnetId'], message: 'set exactly one of -c emrSubnetId=subnet-… (create the EMR cluster) and -c emrClusterId=j-… (use yours)' });
    }
    if ((c.redshiftClusterId === undefined) !== (c.redshiftDbUser === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['redshiftClusterId'], message: 'an existing Redshift cluster needs both -c redshiftClusterId=… and -c redshiftDbUser=…' });
    }
  });

/** The stack's props from CDK context values (strings, as `-c key=value` passes them). */
export function propsFromContext(context: Record<string, unknown>): { stackName: string; props: SmartcityStackProps } {
  const known = Object.keys(contextSchema.shape);
  const parsed = contextSchema.safeParse(Object.fromEntries(Object.entries(context).filter(([key]) => known.includes(key))));
  if (!parsed.success) {
    throw new Error(`invalid CDK context: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'context'}: ${i.message}`).join('; ')}`);
  }
  const c = parsed.data;
  return {
    stackName: c.stackName,
    props: {
      description: 'smartcity: lake buckets, Glue catalog/crawlers/curate job, EMR roles, Redshift, Athena, worker policy (infra/)',
      emr: c.emrSubnetId !== undefined ? { subnetId: c.emrSubnetId } : { clusterId: c.emrClusterId! },
      redshift:
        c.redshiftClusterId !== undefined
          ? { clusterId: c.redshiftClusterId, dbUser: c.redshiftDbUser!, database: c.redshiftDatabase }
          : { serverless: { ...(c.redshiftSubnetIds && { subnetIds: c.redshiftSubnetIds }) } },
      destroyData: c.destroyData,
      ...(c.athenaBytesScannedCutoff !== undefined && { athenaBytesScannedCutoff: c.athenaBytesScannedCutoff }),
      // Account and region of the deploying credentials (cdk sets these); absent, the template is
      // environment-agnostic and synthesizes offline.
      env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
    },
  };
}

if (require.main === module) {
  const app = new App();
  const context: Record<string, unknown> = {};
  for (const key of Object.keys(contextSchema.shape)) {
    const value: unknown = app.node.tryGetContext(key);
    if (value !== undefined) context[key] = value;
  }
  try {
    const { stackName, props } = propsFromContext(context);
    new SmartcityStack(app, stackName, props);
    app.synth();
  } catch (err) {
    console.error((err as Error).message);
    process.exitCode = 1;
  }
}
