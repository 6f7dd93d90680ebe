/**
 * Payload encryption keys, from the environment only: MAILOVER_PAYLOAD_KEYS="k2:<base64>,k1:<base64>".
 * Each key is an id and 32 random bytes in base64 (AES-256). The first key is the current one
 * (new payloads are encrypted with it); the others only decrypt payloads written before a rotation.
 * Errors name the variable and the key id, never the key material.
 */

export const PAYLOAD_KEYS_ENV = 'MAILOVER_PAYLOAD_KEYS';
export const KEY_BYTES = 32;

export interface PayloadKey {
  id: string;
  key: Buffer;
}

export class PayloadKeyError extends Error {
  override readonly name = 'PayloadKeyError';
}

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Parses "id:base64,id:base64" (first = current). Throws a PayloadKeyError listing every problem. */
export function parsePayloadKeys(value: string, variable = PAYLOAD_KEYS_ENV): PayloadKey[] {
  const problems: string[] = [];
  const keys: PayloadKey[] = [];
  const entries = value.split(',').map((e) => e.trim());
  entries.forEach((entry, i) => {
    const where = `${variable} entry ${i + 1}`;
    if (entry === '') {
      problems.push(`${where}: empty (expected id:base64-key, entries separated by commas)`);
      return;
    }
    const colon = entry.indexOf(':');
    if (colon < 0) {
      problems.push(`${where}: expected id:base64-key (no ':' found)`);
      return;
    }
    const id = entry.slice(0, colon).trim();
    const material = entry.slice(colon + 1).trim();
    if (!KEY_ID.test(id)) {
      problems.push(`${where}: key id ${JSON.stringify(id.slice(0, 64))} must be 1-64 letters, digits, _ . - (starting with a letter or digit)`);
      return;
    }
    if (!BASE64.test(material) || material === '') {
      problems.push(`${variable}: key '${id}' is not valid base64 (expected ${KEY_BYTES} random bytes in base64, e.g. from \`openssl rand -base64 32\`)`);
      return;
    }
    const key = Buffer.from(material, 'base64');
    if (key.length !== KEY_BYTES) {
      problems.push(`${variable}: key '${id}' is ${key.length} bytes, AES-256 needs exactly ${KEY_BYTES} (\`openssl rand -base64 32\`)`);
      return;
    }
    if (keys.some((k) => k.id === id)) {
      problems.push(`${variable}: key id '${id}' appears twice`);
      return;
    }
    keys.push({ id, key });
  });
  if (problems.length) throw new PayloadKeyError(problems.join('; '));
  return keys;
}

/** The keys in MAILOVER_PAYLOAD_KEYS, or undefined when it is not set (encryption off). */
export function payloadKeysFromEnv(env: NodeJS.ProcessEnv = process.env): PayloadKey[] | undefined {
  const value = env[PAYLOAD_KEYS_ENV];
  if (value === undefined || value.trim() === '') return undefined;
  return parsePayloadKeys(value);
}
