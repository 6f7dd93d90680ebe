export * from './campaign';
export * from './drill';
