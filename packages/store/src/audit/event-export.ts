import { StrataError, validateRecordedEvent, type NewEvent, type RecordedEvent } from '@strata/core';
import type { HistoryEntry } from './event-audit.ts';

/**
 * One line of `strata export` (NDJSON): a recorded event as JSON, its position as a decimal
 * string, and the exporting site's chain link of the event before it. `strata import`
 * reads it back (and checks the chain).
 */
export interface ExportedEvent {
  readonly id: string;
  readonly stream: string;
  readonly revision: number;
  readonly position: string;
  readonly origin: string;
  readonly originSeq: number;
  readonly hlc: { readonly wall: number; readonly logical: number };
  readonly type: string;
  readonly data: unknown;
  readonly meta: Readonly<Record<string, unknown>>;
  readonly prevHash?: string;
}

export function exportLine(entry: HistoryEntry): string {
  const { event } = entry;
  const line: ExportedEvent = {
    id: event.id,
    stream: event.stream,
    revision: event.revision,
    position: event.position.toString(),
    origin: event.origin,
    originSeq: event.originSeq,
    hlc: event.hlc,
    type: event.type,
    data: event.data,
    meta: event.meta as Readonly<Record<string, unknown>>,
    ...(entry.prevHash === undefined ? {} : { prevHash: entry.prevHash }),
  };
  return JSON.stringify(line);
}

const HEX_LINK = /^[0-9a-f]{64}$/;

/** Parses and validates one export line; throws STRATA_ERR_EVENT_INVALID naming the line. */
export function parseExportLine(text: string, lineNumber: number): { readonly event: RecordedEvent; readonly prevHash: Uint8Array | undefined } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new StrataError('STRATA_ERR_EVENT_INVALID', `line ${lineNumber}: not JSON`, { line: lineNumber }, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new StrataError('STRATA_ERR_EVENT_INVALID', `line ${lineNumber}: not an event object`, { line: lineNumber });
  }
  const { prevHash, position, ...fields } = value as Record<string, unknown>;
  if (typeof position !== 'string' || !/^[0-9]{1,19}$/.test(position)) {
    throw new StrataError('STRATA_ERR_EVENT_INVALID', `line ${lineNumber}: position must be a decimal string`, { line: lineNumber });
  }
  if (prevHash !== undefined && (typeof prevHash !== 'string' || !HEX_LINK.test(prevHash))) {
    throw new StrataError('STRATA_ERR_EVENT_INVALID', `line ${lineNumber}: prevHash must be 64 hex digits`, { line: lineNumber });
  }
  try {
    const event = validateRecordedEvent({ ...fields, position: BigInt(position) });
    return { event, prevHash: prevHash === undefined ? undefined : Buffer.from(prevHash, 'hex') };
  } catch (error) {
    if (error instanceof StrataError) throw new StrataError(error.code, `line ${lineNumber}: ${error.message}`, { ...error.details, line: lineNumber }, { cause: error });
    throw error;
  }
}

/** The event as a new event for another store: its stream, revision and position are the exporter's. */
export function importedEvent(event: RecordedEvent): NewEvent {
  const { stream: _stream, revision: _revision, position: _position, ...rest } = event;
  return rest as NewEvent;
}
