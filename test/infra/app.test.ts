// The CDK app's choices (-c key=value) are parsed before anything is built: a wrong or missing
// one is a single error that says what to pass.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { propsFromContext } from '../../infra/app';

describe('infra app context', () => {
  test('a new EMR cluster and Redshift Serverless by default, data kept', () => {
    const { stackName, props } = propsFromContext({ emrSubnetId: 'subnet-0abc' });
    assert.equal(stackName, 'Smartcity');
    assert.deepEqual(props.emr, { subnetId: 'subnet-0abc' });
    assert.deepEqual(props.redshift, { serverless: {} });
    assert.equal(props.destroyData, false);
  });

  test('an existing EMR cluster, a provisioned Redshift cluster, data deleted with the stack', () => {
    const { stackName, props } = propsFromContext({
      stackName: 'SmartcityDev',
      emrClusterId: 'j-2AXXXXXXGAPLF',
      redshiftClusterId: 'analytics',
      redshiftDbUser: 'loader',
      destroyData: 'true',
    });
    assert.equal(stackName, 'SmartcityDev');
    assert.deepEqual(props.emr, { clusterId: 'j-2AXXXXXXGAPLF' });
    assert.deepEqual(props.redshift, { clusterId: 'analytics', dbUser: 'loader', database: 'smartcity' });
    assert.equal(props.destroyData, true);
  });

  test('Serverless subnets: comma-separated, at least three', () => {
    const { props } = propsFromContext({ emrSubnetId: 'subnet-1', redshiftSubnetIds: 'subnet-a1, subnet-b2,subnet-c3' });
    assert.deepEqual(props.redshift, { serverless: { subnetIds: ['subnet-a1', 'subnet-b2', 'subnet-c3'] } });
    assert.throws(() => propsFromContext({ emrSubnetId: 'subnet-1', redshiftSubnetIds: 'subnet-a1,subnet-b2' }), /redshiftSubnetIds: needs subnets in at least three/);
  });

  const errors: [Record<string, unknown>, RegExp][] = [
    [{}, /set exactly one of -c emrSubnetId=subnet-… \(create the EMR cluster\) and -c emrClusterId=j-…/],
    [{ emrSubnetId: 'subnet-1', emrClusterId: 'j-ABC' }, /set exactly one of/],
    [{ emrSubnetId: 'vpc-123' }, /emrSubnetId: must be a subnet id/],
    [{ emrClusterId: 'cluster-1' }, /emrClusterId: must be an EMR cluster id/],
    [{ emrSubnetId: 'subnet-1', redshiftClusterId: 'analytics' }, /needs both -c redshiftClusterId=… and -c redshiftDbUser=…/],
    [{ emrSubnetId: 'subnet-1', destroyData: 'yes' }, /destroyData/],
    [{ emrSubnetId: 'subnet-1', stackName: 'my_stack' }, /stackName: must be a CloudFormation stack name/],
    [{ emrSubnetId: 'subnet-1', athenaBytesScannedCutoff: '1000' }, /athenaBytesScannedCutoff: Athena needs at least 10 MB/],
  ];
  for (const [context, message] of errors) {
    test(`rejects ${JSON.stringify(context)}`, () => {
      assert.throws(() => propsFromContext(context), (err: Error) => err.message.startsWith('invalid CDK context: ') && message.test(err.message));
    });
  }
});
