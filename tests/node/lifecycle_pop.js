// The ECS lifecycle of tests/python/lifecycle_v1.py with the official classic Node client
// (@alicloud/pop-core, RPC with V1 HMAC-SHA1 signatures).
// Usage: node lifecycle_pop.js <http://host:port> <region>. Prints one JSON line on success.
'use strict';
const RPCClient = require('@alicloud/pop-core');
const { wait } = require('./common');

const [endpoint, region] = process.argv.slice(2);
const PUBLIC_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ node-test';
const client = new RPCClient({
  accessKeyId: 'testid', accessKeySecret: process.env.SECRET || 'testsecret',
  endpoint, apiVersion: '2014-05-26',
});
const call = (action, params) => client.request(action, { RegionId: region, ...params }, { method: 'POST' });

async function main() {
  await call('ImportKeyPair', { KeyPairName: 'node-pop-key', PublicKeyBody: PUBLIC_KEY });
  const sg = (await call('CreateSecurityGroup', { SecurityGroupName: 'node-pop-sg' })).SecurityGroupId;
  await call('AuthorizeSecurityGroup', { SecurityGroupId: sg, IpProtocol: 'tcp', PortRange: '22/22', SourceCidrIp: '0.0.0.0/0' });
  const instance = (await call('CreateInstance', {
    ImageId: 'ubuntu_24_04_x64_20G_alibase_20251010.vhd', InstanceType: 'ecs.s2.large',
    SecurityGroupId: sg, KeyPairName: 'node-pop-key', ClientToken: 'node-pop-create',
  })).InstanceId;
  const status = async () => {
    const list = (await call('DescribeInstances', { InstanceIds: JSON.stringify([instance]) })).Instances.Instance;
    return list.length ? list[0].Status : null;
  };
  await wait('Stopped', async () => (await status()) === 'Stopped');
  await call('StartInstance', { InstanceId: instance });
  await wait('Running', async () => (await status()) === 'Running');
  const disk = (await call('DescribeDisks', { InstanceId: instance, DiskType: 'system' })).Disks.Disk[0].DiskId;
  const snapshot = (await call('CreateSnapshot', { DiskId: disk, SnapshotName: 'node-pop-snap' })).SnapshotId;
  await wait('accomplished', async () => (await call('DescribeSnapshots', {
    SnapshotIds: JSON.stringify([snapshot]),
  })).Snapshots.Snapshot[0].Status === 'accomplished');
  const image = (await call('CreateImage', { SnapshotId: snapshot, ImageName: 'node-pop-image' })).ImageId;
  await wait('Available', async () => (await call('DescribeImages', {
    ImageId: image, Status: 'Creating,Available,CreateFailed',
  })).Images.Image[0].Status === 'Available');
  await call('DeleteInstance', { InstanceId: instance, Force: true });
  await call('DeleteImage', { ImageId: image });
  await call('DeleteSnapshot', { SnapshotId: snapshot });
  // An instance is released asynchronously: its security group is refused meanwhile.
  await wait('the security group deleted', async () => {
    try {
      await call('DeleteSecurityGroup', { SecurityGroupId: sg });
      return true;
    } catch (e) {
      if (e.code !== 'DependencyViolation') throw e;
      return false;
    }
  });
  await call('DeleteKeyPairs', { KeyPairNames: JSON.stringify(['node-pop-key']) });
  console.log(JSON.stringify({ instance, snapshot, image, security_group: sg }));
}

main().catch((e) => {
  console.error(`${e.code || ''} ${e.message}`);
  process.exit(1);
});
