export * from './campaign';
export * from './provider-health';
export * from './drill';
