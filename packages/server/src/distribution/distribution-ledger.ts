import { invariant } from '@strata/core';
import type { RecordedEvent } from '@strata/core';
import type { StreamFold } from '../stream-writer.ts';
import { bundleId, validateManifest } from './release-bundle-model.ts';
import type { BundleManifest } from './release-bundle-model.ts';

/**
 * The decider state of the `distribution` stream: release bundles this site created
 * (source) or received (edge), the public keys it trusts, and the distribution ids it has
 * accepted (replay protection). Small (bundles, not artifacts), so it is folded in memory.
 */
export interface StoredBundle {
  readonly manifest: BundleManifest;
  readonly signature: string;
  /** created: made on this site; received: distributed to this site by a trusted source. */
  readonly kind: 'created' | 'received';
  /** A received bundle is published once all its files are in place (always true for created ones). */
  readonly published: boolean;
  readonly distributionId: string | undefined;
  /** Epoch ms (the HLC wall of the event that stored it). */
  readonly storedAt: number;
  readonly storedBy: string;
}

export interface TrustedKey {
  readonly alias: string;
  readonly publicKey: string;
  readonly fingerprint: string;
  readonly savedAt: number;
  readonly savedBy: string;
}

export interface DistributionState {
  /** Revision of the last event folded (-1: none): compared with the store's to notice other servers' appends. */
  readonly revision: number;
  readonly bundles: ReadonlyMap<string, StoredBundle>;
  readonly trustedKeys: ReadonlyMap<string, TrustedKey>;
  /** Ids of distributions this site accepted, kept after the bundle is deleted. */
  readonly distributionIds: ReadonlySet<string>;
}

function text(value: unknown, what: string): string {
  invariant(typeof value === 'string', `stored distribution event lacks ${what}`);
  return value;
}

export const distributionFold: StreamFold<DistributionState> = {
  initialState: () => ({ revision: -1, bundles: new Map(), trustedKeys: new Map(), distributionIds: new Set() }),
  evolve(previous, event: RecordedEvent) {
    const state = { ...previous, revision: event.revision };
    const data = event.data as Readonly<Record<string, unknown>>;
    switch (event.type) {
      case 'ReleaseBundleCreated':
      case 'ReleaseBundleReceived': {
        const manifest = validateManifest(data.manifest);
        const received = event.type === 'ReleaseBundleReceived';
        const distributionId = received ? text(data.distributionId, 'distributionId') : undefined;
        const bundles = new Map(state.bundles);
        bundles.set(bundleId(manifest.name, manifest.version), {
          manifest,
          signature: text(data.signature, 'signature'),
          kind: received ? 'received' : 'created',
          published: !received,
          distributionId,
          storedAt: event.hlc.wall,
          storedBy: event.meta.actor ?? 'anonymous',
        });
        const distributionIds = distributionId === undefined ? state.distributionIds : new Set(state.distributionIds).add(distributionId);
        return { ...state, bundles, distributionIds };
      }
      case 'ReleaseBundlePublished': {
        const id = bundleId(text(data.name, 'name'), text(data.version, 'version'));
        const bundle = state.bundles.get(id);
        if (bundle === undefined) return state;
        return { ...state, bundles: new Map(state.bundles).set(id, { ...bundle, published: true }) };
      }
      case 'ReleaseBundleDeleted': {
        const bundles = new Map(state.bundles);
        bundles.delete(bundleId(text(data.name, 'name'), text(data.version, 'version')));
        return { ...state, bundles };
      }
      case 'TrustedKeySaved': {
        const key: TrustedKey = {
          alias: text(data.alias, 'alias'),
          publicKey: text(data.publicKey, 'publicKey'),
          fingerprint: text(data.fingerprint, 'fingerprint'),
          savedAt: event.hlc.wall,
          savedBy: event.meta.actor ?? 'anonymous',
        };
        return { ...state, trustedKeys: new Map(state.trustedKeys).set(key.alias, key) };
      }
      case 'TrustedKeyDeleted': {
        const trustedKeys = new Map(state.trustedKeys);
        trustedKeys.delete(text(data.alias, 'alias'));
        return { ...state, trustedKeys };
      }
      default:
        return state;
    }
  },
};
