/** Temporal connection settings from the environment (never printed with secrets). */
import { readFileSync } from 'fs';
import type { DataConverter } from '@temporalio/common';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { dataConverterFromEnv } from './codec/data-converter';

export interface TemporalSettings {
  address: string;
  namespace: string;
  taskQueue: string;
  tls?: NativeConnectionOptions['tls'];
  apiKey?: string;
  /** Payload encryption (MAILOVER_PAYLOAD_KEYS); undefined = payloads stay plain. Workers and clients must agree. */
  dataConverter?: DataConverter;
}

export function temporalSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  const certPath = env.TEMPORAL_TLS_CERT;
  const keyPath = env.TEMPORAL_TLS_KEY;
  if (Boolean(certPath) !== Boolean(keyPath))
    throw new Error('TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together (mTLS client certificate and key paths)');
  const read = (name: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`${name}=${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const tls =
    certPath && keyPath
      ? { clientCertPair: { crt: read('TEMPORAL_TLS_CERT', certPath), key: read('TEMPORAL_TLS_KEY', keyPath) } }
      : env.TEMPORAL_API_KEY
        ? true
        : undefined;
  return {
    address: env.TEMPORAL_ADDRESS || 'localhost:7233',
    namespace: env.TEMPORAL_NAMESPACE || 'default',
    taskQueue: env.MAILOVER_TASK_QUEUE || 'mailover',
    tls,
    apiKey: env.TEMPORAL_API_KEY || undefined,
    dataConverter: dataConverterFromEnv(env),
  };
}
