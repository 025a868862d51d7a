// webhooks.portal.v1.PortalService: one-time links for the embedding product's backend.
import type { portalV1 } from '@hookline/proto';
import { Violations, type AsyncService } from '@hookline/service-kit';
import type { TokenSigner } from '../sessions/tokens';

const WORKSPACE_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
const MIN_TTL_S = 60;
const MAX_TTL_S = 86_400;

export interface PortalServiceSettings {
  publicUrl: () => string;
  linkTtlSeconds: number;
  defaultSessionTtlSeconds: number;
}

export function portalService(signer: TokenSigner, settings: PortalServiceSettings): AsyncService<portalV1.PortalServiceServer> {
  return {
    async createPortalSession(req) {
      const v = new Violations();
      if (!WORKSPACE_RE.test(req.workspaceId)) v.add('workspace_id', 'must be 1-128 characters of [A-Za-z0-9_.:-]');
      let ttl = settings.defaultSessionTtlSeconds;
      if (req.ttl && (req.ttl.seconds !== '0' || req.ttl.nanos !== 0)) {
        ttl = Number(req.ttl.seconds) + req.ttl.nanos / 1e9;
        if (!(ttl >= MIN_TTL_S && ttl <= MAX_TTL_S)) v.add('ttl', `must be between ${MIN_TTL_S} seconds and ${MAX_TTL_S / 3600} hours`);
      }
      v.throwIfAny();
      const { token, claims } = signer.issueLink(req.workspaceId, req.readOnly, Math.floor(ttl), settings.linkTtlSeconds);
      // In the fragment: browsers never send it to a server, so it reaches no access log and no Referer.
      return { url: `${settings.publicUrl()}/#token=${token}`, expireTime: new Date(claims.exp) };
    },
  };
}
