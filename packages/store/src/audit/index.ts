export * from './event-audit.ts';
export { SqlEventAudit, type SqlEventAuditOptions } from './sql-event-audit.ts';
export { MemoryEventAudit } from './memory-event-audit.ts';
export { ChainWalker, type WalkedEvent } from './chain-walker.ts';
export * from './history-json.ts';
export * from './replay.ts';
export * from './event-export.ts';
export * from './blob-retention.ts';
