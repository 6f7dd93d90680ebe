/**
 * A Temporal PayloadCodec that encrypts every payload with AES-256-GCM.
 *
 * An encrypted payload carries metadata `encoding: binary/encrypted`, `encryption-key-id: <id>`
 * and `encryption-cipher: AES-256-GCM`; its data is a 12-byte nonce, the ciphertext of the whole
 * original payload (metadata and data, protobuf-encoded) and the 16-byte GCM tag. The key id is
 * authenticated too (GCM additional data), so a payload relabelled with another key id is refused.
 *
 * Encoding always uses the first (current) key; decoding picks the key by the payload's key id, so
 * histories written before a rotation still decode as long as their key stays in the list.
 * Payloads that are not encrypted pass through decode unchanged (histories from before the codec
 * was turned on keep working).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { PAYLOAD_KEYS_ENV, type PayloadKey } from './payload-keys';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
export const CIPHER_METADATA = 'encryption-cipher';
export const CIPHER = 'AES-256-GCM';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const PayloadMessage = temporal.api.common.v1.Payload;

export class PayloadDecryptionError extends Error {
  override readonly name = 'PayloadDecryptionError';
}

const utf8 = (s: string) => Buffer.from(s, 'utf8');
const text = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : undefined);

/** True when the payload was written by this codec. */
export function isEncryptedPayload(p: Payload): boolean {
  return text(p.metadata?.encoding) === ENCRYPTED_ENCODING;
}

/** The key id an encrypted payload names (undefined for other payloads). */
export function payloadKeyId(p: Payload): string | undefined {
  return isEncryptedPayload(p) ? text(p.metadata?.[KEY_ID_METADATA]) : undefined;
}

export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly byId: Map<string, Buffer>;
  private readonly current: PayloadKey;

  /** keys[0] encrypts; every key decrypts payloads that name it. `source` names where the keys came from, for errors. */
  constructor(
    keys: PayloadKey[],
    private readonly source = PAYLOAD_KEYS_ENV,
  ) {
    if (keys.length === 0) throw new Error(`${source}: at least one key is needed`);
    this.current = keys[0];
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  /** The id new payloads are encrypted with. */
  get currentKeyId(): string {
    return this.current.id;
  }

  get keyIds(): string[] {
    return [...this.byId.keys()];
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.encrypt(p));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => (isEncryptedPayload(p) ? this.decrypt(p) : p));
  }

  private encrypt(payload: Payload): Payload {
    const { id, key } = this.current;
    const plain = PayloadMessage.encode(payload).finish();
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(utf8(id));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return {
      metadata: { encoding: utf8(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8(id), [CIPHER_METADATA]: utf8(CIPHER) },
      data: Buffer.concat([nonce, body, cipher.getAuthTag()]),
    };
  }

  private decrypt(payload: Payload): Payload {
    const id = text(payload.metadata?.[KEY_ID_METADATA]);
    if (!id) throw new PayloadDecryptionError(`encrypted payload has no ${KEY_ID_METADATA} metadata; it was not written by mailover's codec`);
    const cipherName = text(payload.metadata?.[CIPHER_METADATA]);
    if (cipherName !== undefined && cipherName !== CIPHER)
      throw new PayloadDecryptionError(`payload encrypted with key '${id}' uses cipher '${cipherName}', expected ${CIPHER}`);
    const key = this.byId.get(id);
    if (!key) {
      throw new PayloadDecryptionError(
        `payload was encrypted with key '${id}', which is not in ${this.source} (configured: ${this.keyIds.join(', ')}); add the old key back after the current one to read it`,
      );
    }
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < NONCE_BYTES + TAG_BYTES) throw new PayloadDecryptionError(`payload encrypted with key '${id}' is truncated (${data.length} bytes)`);
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, NONCE_BYTES));
    decipher.setAAD(utf8(id));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(NONCE_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadDecryptionError(
        `payload encrypted with key '${id}' failed authentication: the payload was altered, or ${this.source} holds different key material for '${id}'`,
      );
    }
    const decoded = PayloadMessage.decode(plain);
    return { metadata: decoded.metadata, data: decoded.data };
  }
}
