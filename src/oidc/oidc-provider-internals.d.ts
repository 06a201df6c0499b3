// oidc-provider's own proof checks, used by ./dpop.ts for grants Gatehouse signs itself (token
// exchange), so those tokens are bound exactly like the library's. Untyped upstream; these are
// the signatures of oidc-provider 9.13.
declare module 'oidc-provider/lib/helpers/validate_dpop.js' {
  import type Provider from 'oidc-provider';
  import type { KoaContextWithOIDC } from 'oidc-provider';
  export interface DpopResult {
    thumbprint: string;
    jti: string;
    iat: number;
  }
  export default function validateDpop(provider: Provider, ctx: KoaContextWithOIDC, accessToken?: string): Promise<DpopResult | undefined>;
  export function checkDpopReplay(
    provider: Provider,
    ctx: KoaContextWithOIDC,
    dPoP: DpopResult | undefined,
    clientId: string,
  ): Promise<void>;
}

declare module 'oidc-provider/lib/helpers/sender_constraints.js' {
  import type Provider from 'oidc-provider';
  import type { KoaContextWithOIDC } from 'oidc-provider';
  import type { X509Certificate } from 'node:crypto';
  export function checkMtlsCert(provider: Provider, ctx: KoaContextWithOIDC): X509Certificate | undefined;
  export function checkDpopRequired(provider: Provider, ctx: KoaContextWithOIDC, dPoP: unknown): void;
}
