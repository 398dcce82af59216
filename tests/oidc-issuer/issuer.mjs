// A real OpenID Connect issuer for the keyless-CI tests: panva's oidc-provider serving
// discovery, the JWKS and the token endpoint over HTTPS, on 127.0.0.1 and a port the OS picks.
// tests/common/oidc.rs starts it, makes its CA and certificate, and mints ID tokens through the
// custom grant below, which needs no browser: the library's own IdToken class signs them.
//
//   node issuer.mjs --cert CERT.pem --key KEY.pem --port-file FILE [--name NAME]
//
// It writes its port into FILE once it serves. The issuer is https://127.0.0.1:PORT.
//
// The grant (POST /token, client_id=minter, no client secret):
//   grant_type=urn:regauth:test:mint-id-token
//   audience=AUD          the ID token's `aud` (what a CI job asks its issuer for)
//   claims={"sub":…}      a JSON object: the identity claims (GitHub- or GitLab-shaped)
//   lifetime=SECONDS      exp - iat (default 300, GitHub's)
//   alg=RS256|ES256       which of the issuer's keys signs (default RS256)
//   iat_offset=SECONDS    iat = now + offset (default 0; the expired and future cases)
//   nbf_offset=SECONDS    adds nbf = now + offset
// answers {"id_token": "…"}.
//
// Test controls, outside the OpenID protocol (under /test/):
//   POST /test/rotate     new RS256 and ES256 keys (new kids) sign from now on; the JWKS
//                         publishes the new keys first and the previous ones after them
//   GET  /test/stats      {"jwks": N, "discovery": N, "jku": N}: requests served so far
//   GET  /test/keys       {"<kid>": {"alg": …, "pem": "<SPKI PEM of the public key>"}}
//   PUT  /test/jku        stores a JSON document that GET /test/jku then serves (and counts):
//                         the "elsewhere" a forged `jku` header points to

import { generateKeyPairSync, createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const GRANT = 'urn:regauth:test:mint-id-token';
const GRANT_PARAMS = ['audience', 'claims', 'lifetime', 'alg', 'iat_offset', 'nbf_offset'];

const { values: args } = parseArgs({
  options: {
    cert: { type: 'string' },
    key: { type: 'string' },
    'port-file': { type: 'string' },
    name: { type: 'string', default: 'issuer' },
  },
});
for (const required of ['cert', 'key', 'port-file']) {
  if (!args[required]) {
    console.error(`issuer: --${required} is required`);
    process.exit(2);
  }
}

const stats = { jwks: 0, discovery: 0, jku: 0 };
let jkuDocument = { keys: [] };
let generation = 0;
// Private JWKs, newest first: the provider signs with the first key of each algorithm.
let keys = [];

function newKeys() {
  generation += 1;
  const tag = `${args.name}-${generation}-${randomBytes(3).toString('hex')}`;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `${tag}-rs256`, alg: 'RS256', use: 'sig' },
    { ...ec, kid: `${tag}-es256`, alg: 'ES256', use: 'sig' },
  ];
}

function intParam(value, fallback, name) {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new errors.InvalidRequest(`${name} must be an integer`);
  return n;
}

// The custom grant: an ID token with the caller's claims, audience, lifetime and algorithm.
async function mintIdToken(ctx) {
  const { params, client, provider } = ctx.oidc;
  if (!params.audience) throw new errors.InvalidRequest('audience is required');
  let claims;
  try {
    claims = JSON.parse(params.claims || '{}');
  } catch {
    throw new errors.InvalidRequest('claims must be a JSON object');
  }
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
    throw new errors.InvalidRequest('claims must be a JSON object');
  }
  const alg = params.alg || 'RS256';
  if (alg !== 'RS256' && alg !== 'ES256') throw new errors.InvalidRequest('alg must be RS256 or ES256');
  const lifetime = intParam(params.lifetime, 300, 'lifetime');
  const iatOffset = intParam(params.iat_offset, 0, 'iat_offset');
  const now = Math.floor(Date.now() / 1000);
  const iat = now + iatOffset;
  const expiresAt = iat + lifetime;
  if (expiresAt === now) throw new errors.InvalidRequest('iat_offset + lifetime must not be 0');

  // The ID token's audience is its client's id: this client is the minting client with the
  // caller's audience and algorithm (prototype delegation keeps everything else of it).
  const audienceClient = Object.create(client, {
    clientId: { value: params.audience },
    idTokenSignedResponseAlg: { value: alg },
  });
  const token = new provider.IdToken({}, { ctx, client: audienceClient });
  for (const [name, value] of Object.entries(claims)) token.set(name, value);
  token.set('iat', iat);
  if (params.nbf_offset !== undefined && params.nbf_offset !== '') {
    token.set('nbf', now + intParam(params.nbf_offset, 0, 'nbf_offset'));
  }
  ctx.body = { id_token: await token.issue({ use: 'idtoken', expiresAt }) };
}

function makeProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'minter',
      token_endpoint_auth_method: 'none',
      grant_types: [GRANT],
      response_types: [],
      redirect_uris: [],
    }],
    jwks: { keys },
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256'] },
    features: { devInteractions: { enabled: false } },
    cookies: { keys: [randomBytes(16).toString('hex')] },
  });
  provider.registerGrantType(GRANT, mintIdToken, GRANT_PARAMS);
  return provider;
}

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function publicKeys() {
  return Object.fromEntries(keys.map((k) => [k.kid, {
    alg: k.alg,
    pem: createPublicKey({ key: k, format: 'jwk' }).export({ type: 'spki', format: 'pem' }),
  }]));
}

async function control(req, res, path, rotate) {
  if (path === '/test/rotate' && req.method === 'POST') {
    rotate();
    return sendJson(res, 200, { kids: keys.map((k) => k.kid) });
  }
  if (path === '/test/stats' && req.method === 'GET') return sendJson(res, 200, stats);
  if (path === '/test/keys' && req.method === 'GET') return sendJson(res, 200, publicKeys());
  if (path === '/test/jku' && req.method === 'GET') {
    stats.jku += 1;
    return sendJson(res, 200, jkuDocument);
  }
  if (path === '/test/jku' && req.method === 'PUT') {
    let body = '';
    for await (const chunk of req) body += chunk;
    try {
      jkuDocument = JSON.parse(body);
    } catch {
      return sendJson(res, 400, { error: 'the body must be JSON' });
    }
    return sendJson(res, 204, {});
  }
  return sendJson(res, 404, { error: `no test control ${req.method} ${path}` });
}

let handler = null;
const server = createServer({
  cert: readFileSync(args.cert),
  key: readFileSync(args.key),
}, (req, res) => {
  const path = new URL(req.url, 'https://issuer').pathname;
  if (path.startsWith('/test/')) {
    control(req, res, path, rotate).catch((err) => sendJson(res, 500, { error: String(err) }));
    return;
  }
  if (path === '/jwks') stats.jwks += 1;
  if (path === '/.well-known/openid-configuration') stats.discovery += 1;
  handler(req, res);
});

let issuer;
function rotate() {
  keys = [...newKeys(), ...keys];
  handler = makeProvider(issuer).callback();
}

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `https://127.0.0.1:${port}`;
  keys = newKeys();
  handler = makeProvider(issuer).callback();
  // Written whole, then renamed: the fixture never reads half a port number.
  const file = args['port-file'];
  writeFileSync(`${file}.tmp`, `${port}\n`);
  renameSync(`${file}.tmp`, file);
  console.log(`issuer ${issuer} serving (kids ${keys.map((k) => k.kid).join(', ')})`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
