// The actions Packer 1.6.6 adds to a plain lifecycle, through the official Tea SDK for Node
// (@alicloud/ecs20140526, V3 signatures), every response checked against the SDK's typed model:
// a VPC network, egress rules, an instance created with a password and no key pair, AttachKeyPair /
// DetachKeyPair, AddTags / DescribeTags / RemoveTags, and the EIP lifecycle; then every resource
// is deleted.
// Usage: node packer_actions_tea.js <host:port> <region>. Prints one JSON line on success.
'use strict';
const Ecs = require('@alicloud/ecs20140526');
const OpenApi = require('@alicloud/openapi-client');
const { deleteWhenReleased, teaClient, wait } = require('./common');

const [endpoint, region] = process.argv.slice(2);
const PUBLIC_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ node-test';
const { call, problems } = teaClient(Ecs, OpenApi, endpoint, region);

async function network() {
  const vpc = (await call('createVpc', { regionId: region, cidrBlock: '172.16.0.0/16', vpcName: 'tea-vpc' })).vpcId;
  await wait('VPC Available', async () => (await call('describeVpcs', { regionId: region, vpcId: vpc }))
    .vpcs.vpc[0].status === 'Available');
  const zone = (await call('describeZones', { regionId: region })).zones.zone[0].zoneId;
  const vsw = (await call('createVSwitch', { regionId: region, vpcId: vpc, zoneId: zone, cidrBlock: '172.16.1.0/24' })).vSwitchId;
  await wait('vSwitch Available', async () => (await call('describeVSwitches', { regionId: region, vSwitchId: vsw }))
    .vSwitches.vSwitch[0].status === 'Available');
  const sg = (await call('createSecurityGroup', { regionId: region, vpcId: vpc })).securityGroupId;
  const egress = { regionId: region, securityGroupId: sg, ipProtocol: 'all', portRange: '-1/-1', destCidrIp: '0.0.0.0/0', nicType: 'internet' };
  await call('authorizeSecurityGroupEgress', egress);
  await call('authorizeSecurityGroup', { regionId: region, securityGroupId: sg, ipProtocol: 'tcp', portRange: '22/22', sourceCidrIp: '0.0.0.0/0' });
  await call('describeSecurityGroupAttribute', { regionId: region, securityGroupId: sg, direction: 'egress' });
  await call('revokeSecurityGroupEgress', egress);
  return { vpc, vsw, sg };
}

async function keyAndTags(instance) {
  await call('importKeyPair', { regionId: region, keyPairName: 'tea-packer-key', publicKeyBody: PUBLIC_KEY });
  const ids = JSON.stringify([instance]);
  await call('attachKeyPair', { regionId: region, keyPairName: 'tea-packer-key', instanceIds: ids });
  const tag = { regionId: region, resourceType: 'instance', resourceId: instance };
  await call('addTags', { ...tag, tag: [new Ecs.AddTagsRequestTag({ key: 'built-by', value: 'packer' })] });
  await call('describeTags', { ...tag });
  await call('removeTags', { ...tag, tag: [new Ecs.RemoveTagsRequestTag({ key: 'built-by', value: 'packer' })] });
  await call('detachKeyPair', { regionId: region, keyPairName: 'tea-packer-key', instanceIds: ids });
}

async function eip(instance) {
  const id = (await call('allocateEipAddress', { regionId: region, internetChargeType: 'PayByTraffic' })).allocationId;
  const status = async () => (await call('describeEipAddresses', { regionId: region, allocationId: id }))
    .eipAddresses.eipAddress[0].status;
  await wait('EIP Available', async () => (await status()) === 'Available');
  const binding = { regionId: region, allocationId: id, instanceId: instance, instanceType: 'EcsInstance' };
  await call('associateEipAddress', binding);
  await wait('EIP InUse', async () => (await status()) === 'InUse');
  await call('describeInstances', { regionId: region, instanceIds: JSON.stringify([instance]) });
  await call('unassociateEipAddress', binding);
  await wait('EIP Available again', async () => (await status()) === 'Available');
  await call('releaseEipAddress', { regionId: region, allocationId: id });
  return id;
}

async function main() {
  const { vpc, vsw, sg } = await network();
  const instance = (await call('createInstance', {
    regionId: region, imageId: 'ubuntu_24_04_x64_20G_alibase_20251010.vhd', instanceType: 'ecs.s2.large',
    securityGroupId: sg, vSwitchId: vsw, password: 'Tea-Pass-2024', clientToken: 'tea-packer-create',
  })).instanceId;
  await wait('Stopped', async () => (await call('describeInstances', {
    regionId: region, instanceIds: JSON.stringify([instance]),
  })).instances.instance[0].status === 'Stopped');
  await keyAndTags(instance);
  const allocation = await eip(instance);
  await call('deleteInstance', { instanceId: instance, force: true });
  await deleteWhenReleased('the security group deleted',
    () => call('deleteSecurityGroup', { regionId: region, securityGroupId: sg }));
  await deleteWhenReleased('the vSwitch deleted', () => call('deleteVSwitch', { regionId: region, vSwitchId: vsw }));
  await deleteWhenReleased('the VPC deleted', () => call('deleteVpc', { regionId: region, vpcId: vpc }));
  await call('deleteKeyPairs', { regionId: region, keyPairNames: JSON.stringify(['tea-packer-key']) });
  if (problems.length) {
    console.error(`responses that do not match the SDK's models:\n${problems.join('\n')}`);
    process.exit(3);
  }
  console.log(JSON.stringify({ instance, eip: allocation, vpc, vswitch: vsw, security_group: sg }));
}

main().catch((e) => {
  if (problems.length) console.error(`responses that do not match the SDK's models:\n${problems.join('\n')}`);
  console.error(`${e.code || ''} ${e.message}`);
  process.exit(1);
});
