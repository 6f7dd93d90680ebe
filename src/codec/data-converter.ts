/**
 * The one place that decides whether mailover encrypts what it puts into Temporal: with
 * MAILOVER_PAYLOAD_KEYS set, every worker and client gets the AES-GCM payload codec (and
 * failure messages are encoded so the codec covers them); without it, payloads stay plain
 * (the embedded demo).
 */
import type { DataConverter } from '@temporalio/common';
import { AesGcmPayloadCodec } from './aes-gcm-codec';
import { payloadKeysFromEnv, type PayloadKey } from './payload-keys';

export function encryptingDataConverter(codec: AesGcmPayloadCodec): DataConverter {
  return { payloadCodecs: [codec], failureConverterPath: require.resolve('./failure-converter') };
}

export function dataConverterForKeys(keys: PayloadKey[]): DataConverter {
  return encryptingDataConverter(new AesGcmPayloadCodec(keys));
}

/** The codec for MAILOVER_PAYLOAD_KEYS, or undefined when it is not set. */
export function payloadCodecFromEnv(env: NodeJS.ProcessEnv = process.env): AesGcmPayloadCodec | undefined {
  const keys = payloadKeysFromEnv(env);
  return keys ? new AesGcmPayloadCodec(keys) : undefined;
}

/** The data converter for MAILOVER_PAYLOAD_KEYS, or undefined (the SDK default: no encryption). */
export function dataConverterFromEnv(env: NodeJS.ProcessEnv = process.env): DataConverter | undefined {
  const codec = payloadCodecFromEnv(env);
  return codec ? encryptingDataConverter(codec) : undefined;
}

/** One line for start-up messages: which key encrypts, never the key material. */
export function describeEncryption(dataConverter: DataConverter | undefined): string {
  const codec = dataConverter?.payloadCodecs?.find((c): c is AesGcmPayloadCodec => c instanceof AesGcmPayloadCodec);
  if (!codec) return 'payloads not encrypted (MAILOVER_PAYLOAD_KEYS not set)';
  const others = codec.keyIds.slice(1);
  return `payloads encrypted with key ${codec.currentKeyId}${others.length ? ` (also decrypts ${others.join(', ')})` : ''}`;
}
