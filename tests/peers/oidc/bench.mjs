// oidc-provider (panva, OpenID Certified) configured as the peer for bench/tokens.py: one
// confidential client with client_credentials, introspection on, its default in-memory store.
//   PORT=9500 node bench.mjs
import Provider from 'oidc-provider';

const PORT = Number(process.env.PORT || 9500);
const provider = new Provider(`http://127.0.0.1:${PORT}`, {
  clients: [{
    client_id: 'bench', client_secret: 'bench-secret-0123456789abcdef-0123456789',
    grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['api'],
  ttl: { ClientCredentials: 600 },
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
});
provider.listen(PORT, '127.0.0.1', () => console.log(`listening ${PORT}`));
