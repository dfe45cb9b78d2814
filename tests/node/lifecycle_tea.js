// The ECS lifecycle of tests/python/lifecycle_tea.py with the official Tea SDK for Node
// (@alicloud/ecs20140526, V3 ACS3-HMAC-SHA256 signatures). Every response body is checked against
// the SDK's typed model (every declared field present, with its declared type).
// Usage: node lifecycle_tea.js <host:port> <region>. Prints one JSON line on success.
'use strict';
const Ecs = require('@alicloud/ecs20140526');
const OpenApi = require('@alicloud/openapi-client');
const { deleteWhenReleased, teaClient, wait } = require('./common');

const [endpoint, region] = process.argv.slice(2);
const PUBLIC_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ node-test';
const { call, problems } = teaClient(Ecs, OpenApi, endpoint, region);

async function main() {
  await call('describeRegions', {});
  await call('describeAccountAttributes', { regionId: region });
  await call('importKeyPair', { regionId: region, keyPairName: 'node-tea-key', publicKeyBody: PUBLIC_KEY });
  await call('describeKeyPairs', { regionId: region, keyPairName: 'node-tea-key', includePublicKey: true });
  const sg = (await call('createSecurityGroup', { regionId: region, securityGroupName: 'node-tea-sg' })).securityGroupId;
  await call('authorizeSecurityGroup', {
    regionId: region, securityGroupId: sg,
    permissions: [new Ecs.AuthorizeSecurityGroupRequestPermissions({ ipProtocol: 'tcp', portRange: '22/22', sourceCidrIp: '0.0.0.0/0' })],
  });
  await call('describeSecurityGroups', { regionId: region, securityGroupIds: JSON.stringify([sg]) });
  await call('describeSecurityGroupAttribute', { regionId: region, securityGroupId: sg });
  const instance = (await call('createInstance', {
    regionId: region, imageId: 'ubuntu_24_04_x64_20G_alibase_20251010.vhd', instanceType: 'ecs.s2.large',
    securityGroupId: sg, keyPairName: 'node-tea-key', clientToken: 'node-tea-create',
  })).instanceId;
  const status = async () => {
    const body = await call('describeInstances', { regionId: region, instanceIds: JSON.stringify([instance]) });
    return body.instances.instance.length ? body.instances.instance[0].status : null;
  };
  await wait('Stopped', async () => (await status()) === 'Stopped');
  await call('startInstance', { instanceId: instance });
  await wait('Running', async () => (await status()) === 'Running');
  await call('describeInstanceStatus', { regionId: region });
  const disk = (await call('describeDisks', { regionId: region, instanceId: instance, diskType: 'system' })).disks.disk[0].diskId;
  const snapshot = (await call('createSnapshot', { diskId: disk, snapshotName: 'node-tea-snap' })).snapshotId;
  await wait('accomplished', async () => (await call('describeSnapshots', {
    regionId: region, snapshotIds: JSON.stringify([snapshot]),
  })).snapshots.snapshot[0].status === 'accomplished');
  const image = (await call('createImage', { regionId: region, snapshotId: snapshot, imageName: 'node-tea-image' })).imageId;
  await wait('Available', async () => (await call('describeImages', {
    regionId: region, imageId: image, status: 'Creating,Available,CreateFailed',
  })).images.image[0].status === 'Available');
  await call('deleteInstance', { instanceId: instance, force: true });
  await call('deleteImage', { regionId: region, imageId: image });
  await call('deleteSnapshot', { snapshotId: snapshot });
  // An instance is released asynchronously: its security group is refused meanwhile.
  await deleteWhenReleased('the security group deleted',
    () => call('deleteSecurityGroup', { regionId: region, securityGroupId: sg }));
  await call('deleteKeyPairs', { regionId: region, keyPairNames: JSON.stringify(['node-tea-key']) });
  if (problems.length) {
    console.error(`responses that do not match the SDK's models:\n${problems.join('\n')}`);
    process.exit(3);
  }
  console.log(JSON.stringify({ instance, snapshot, image, security_group: sg }));
}

main().catch((e) => {
  if (problems.length) console.error(`responses that do not match the SDK's models:\n${problems.join('\n')}`);
  console.error(`${e.code || ''} ${e.message}`);
  process.exit(1);
});
