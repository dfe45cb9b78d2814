// Helpers of the Node SDK lifecycle scripts: polling, and checking a raw response body against an
// official Tea model class (every field the model declares present, with the model's type).
'use strict';

// Polls `probe` every 200 ms until it yields true; throws after 60 s.
async function wait(what, probe) {
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function typeProblem(value, type, path, problems) {
  if (typeof type === 'string') {
    const want = { string: 'string', number: 'number', boolean: 'boolean' }[type];
    if (want && typeof value !== want) {
      problems.push(`${path}: ${JSON.stringify(value)} is ${typeof value}, the model has ${type}`);
    } else if (type === 'any' || type === 'Readable') {
      // free-form
    }
    return;
  }
  if (typeof type === 'function') {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      problems.push(`${path}: expected an object (${type.name})`);
      return;
    }
    checkModel(value, type, path, problems);
    return;
  }
  if (type && type.type === 'array') {
    if (!Array.isArray(value)) {
      problems.push(`${path}: expected an array`);
      return;
    }
    value.forEach((item, i) => typeProblem(item, type.itemType, `${path}[${i}]`, problems));
    return;
  }
  if (type && type.type === 'map') {
    if (value === null || typeof value !== 'object') problems.push(`${path}: expected a map`);
  }
}

function checkModel(raw, Model, path, problems) {
  const names = Model.names();
  const types = Model.types();
  for (const field of Object.keys(names)) {
    const name = names[field];
    if (!(name in raw) || raw[name] === undefined || raw[name] === null) {
      problems.push(`${path}.${name}: missing (the model has ${describe(types[field])})`);
      continue;
    }
    typeProblem(raw[name], types[field], `${path}.${name}`, problems);
  }
  return problems;
}

function describe(type) {
  if (typeof type === 'string') return type;
  if (typeof type === 'function') return type.name;
  if (type && type.type === 'array') return `array of ${describe(type.itemType)}`;
  return JSON.stringify(type);
}

// A Tea ECS client for `endpoint` (V3 signatures; secret from $SECRET) whose `call(method, fields)`
// checks each raw body against the model the SDK is about to cast it to (before the cast, which
// stops at the first mismatch); mismatches collect in `problems`.
function teaClient(Ecs, OpenApi, endpoint, region) {
  const client = new Ecs.default(new OpenApi.Config({
    accessKeyId: 'testid', accessKeySecret: process.env.SECRET || 'testsecret',
    endpoint, protocol: 'http', regionId: region,
  }));
  const problems = [];
  let expected = null;
  const callApi = client.callApi.bind(client);
  client.callApi = async (...args) => {
    const result = await callApi(...args);
    checkModel(result.body, Ecs[`${expected}ResponseBody`], expected, problems);
    return result;
  };
  async function call(method, fields) {
    expected = method[0].toUpperCase() + method.slice(1);
    const response = await client[method](new Ecs[`${expected}Request`](fields));
    return response.body;
  }
  return { call, problems };
}

// Calls `deleting` until it stops failing with DependencyViolation (an instance's asynchronous
// release holds its network for a moment).
async function deleteWhenReleased(what, deleting) {
  await wait(what, async () => {
    try {
      await deleting();
      return true;
    } catch (e) {
      if (e.code !== 'DependencyViolation') throw e;
      return false;
    }
  });
}

module.exports = { checkModel, wait, teaClient, deleteWhenReleased };
