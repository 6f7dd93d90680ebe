export * from './campaign';
export * from './provider-health';
