// The OpenID Connect provider Shipyard's tests sign in through: panva's certified
// oidc-provider on loopback, for tests only (devInteractions: any password is accepted).
//
//   node server.mjs <config.json>
//
// config.json (written by tests/support/oidc_provider.py):
//   {"port": 4000, "issuer": "http://127.0.0.1:4000", "key_ids": ["k1"],
//    "clients": [{"client_id": "...", "client_secret": "...", "redirect_uris": ["..."]}],
//    "accounts": {"alice": {"email": "...", "email_verified": true, "name": "...",
//                           "groups": ["..."], "userinfo_only": false,
//                           "group_overage": false}}}
//
// The accounts are read again from the file at every findAccount, so a test can change a
// person's groups between two log-ins. "userinfo_only" keeps email, name and groups out of
// the ID token (only the userinfo endpoint gives them); "group_overage" replaces the groups with
// Entra ID's overage claims (the groups are then read from a fake Microsoft Graph). One fresh RSA key per "key_ids"
// entry, the first signs: restarting with other ids is a key rotation.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node server.mjs <config.json>');
  process.exit(2);
}
const readConfig = () => JSON.parse(readFileSync(configPath, 'utf8'));
const config = readConfig();

const keys = (config.key_ids ?? ['test-key-1']).map((kid) => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
});

const PROFILE_CLAIMS = ['email', 'email_verified', 'name', 'groups'];

async function findAccount(ctx, id) {
  const account = readConfig().accounts?.[id];
  if (!account) {
    return undefined;
  }
  return {
    accountId: id,
    async claims(use) {
      const claims = {
        sub: id,
        email: account.email,
        email_verified: account.email_verified ?? true,
        name: account.name,
        groups: account.groups ?? [],
      };
      if (use === 'id_token' && account.userinfo_only) {
        for (const name of PROFILE_CLAIMS) {
          delete claims[name];
        }
      }
      if (account.group_overage) {
        // As Entra ID does past 200 groups: no groups claim, a distributed-claims source
        // (OpenID Connect Core 5.6.2) pointing at the directory's Graph instead.
        delete claims.groups;
        claims._claim_names = { groups: 'src1' };
        claims._claim_sources = {
          src1: { endpoint: `https://graph.windows.net/tenant-1/users/${id}/getMemberObjects` },
        };
      }
      return claims;
    },
  };
}

// First-party clients: no consent page, every requested scope is granted.
async function loadExistingGrant(ctx) {
  const { client, session } = ctx.oidc;
  const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
  if (grantId) {
    return ctx.oidc.provider.Grant.find(grantId);
  }
  const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
  grant.addOIDCScope('openid email profile groups');
  await grant.save();
  return grant;
}

const provider = new Provider(config.issuer, {
  clients: config.clients.map((client) => ({
    client_id: client.client_id,
    ...(client.client_secret ? { client_secret: client.client_secret } : {}),
    redirect_uris: client.redirect_uris,
    token_endpoint_auth_method:
      client.token_endpoint_auth_method ?? (client.client_secret ? 'client_secret_basic' : 'none'),
    grant_types: ['authorization_code'],
    response_types: ['code'],
  })),
  findAccount,
  loadExistingGrant,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // Email, name and groups in the ID token itself (as Keycloak and Entra ID put them).
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  jwks: { keys },
  cookies: { keys: ['shipyard-tests-only-cookie-key'] },
  ttl: { Session: 600, Interaction: 600, Grant: 600, AccessToken: 600, IdToken: 600 },
});
provider.proxy = false;

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${config.issuer}`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
