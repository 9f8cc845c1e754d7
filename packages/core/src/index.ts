export * from './errors.ts';
export * from './ports.ts';
export * from './events.ts';
export * from './stamp.ts';
