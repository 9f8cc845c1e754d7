import type { FederationStateStore } from './ports.ts';
import type { VersionVector } from './version-vector.ts';

/**
 * Outbox cursors in memory. "Durable" for as long as the instance lives: simulations keep
 * one per site across simulated crashes, exactly as a disk would survive them.
 */
export class MemoryFederationStateStore implements FederationStateStore {
  readonly #cursors = new Map<string, VersionVector>();

  async loadCursor(repoKey: string, peerId: string): Promise<VersionVector | undefined> {
    return this.#cursors.get(`${repoKey}\u0000${peerId}`);
  }

  async saveCursor(repoKey: string, peerId: string, cursor: VersionVector): Promise<void> {
    this.#cursors.set(`${repoKey}\u0000${peerId}`, Object.freeze({ ...cursor }));
  }
}
