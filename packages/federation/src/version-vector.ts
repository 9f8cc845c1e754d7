/**
 * Version vectors (DESIGN §5): origin site id → highest contiguous originSeq held. Because a
 * member appends a peer's events only in originSeq order per origin, a vector describes
 * exactly which events a member holds.
 */
export type VersionVector = Readonly<Record<string, number>>;

export const EMPTY_VERSION_VECTOR: VersionVector = Object.freeze({});

export function vectorGet(vector: VersionVector, origin: string): number {
  return Object.hasOwn(vector, origin) ? (vector[origin] ?? 0) : 0;
}

/** The pointwise maximum. */
export function mergeVectors(a: VersionVector, b: VersionVector): VersionVector {
  let merged: Record<string, number> | undefined;
  for (const origin of Object.keys(b)) {
    const value = vectorGet(b, origin);
    if (value > vectorGet(a, origin)) {
      merged ??= { ...a };
      merged[origin] = value;
    }
  }
  return merged ?? a;
}

/** True iff `a` holds everything `b` holds. */
export function vectorCovers(a: VersionVector, b: VersionVector): boolean {
  for (const origin of Object.keys(b)) if (vectorGet(a, origin) < vectorGet(b, origin)) return false;
  return true;
}

export function vectorsEqual(a: VersionVector, b: VersionVector): boolean {
  return vectorCovers(a, b) && vectorCovers(b, a);
}

/** How many events `ahead` holds that `behind` lacks. */
export function vectorLag(ahead: VersionVector, behind: VersionVector): number {
  let lag = 0;
  for (const origin of Object.keys(ahead)) lag += Math.max(0, vectorGet(ahead, origin) - vectorGet(behind, origin));
  return lag;
}

/** Keys sorted, zeros dropped: the canonical form for comparing and hashing. */
export function canonicalVector(vector: VersionVector): VersionVector {
  const canonical: Record<string, number> = {};
  for (const origin of Object.keys(vector).sort()) {
    const value = vectorGet(vector, origin);
    if (value > 0) canonical[origin] = value;
  }
  return canonical;
}
