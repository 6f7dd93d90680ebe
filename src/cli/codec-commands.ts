/** `mailover codec-server`: lets the Temporal Web UI and CLI show encrypted payloads to people who hold the token. */
import { CODEC_TOKEN_ENV, codecTokenFromEnv, DEFAULT_MAX_BODY_BYTES, parseOrigin, startCodecServer } from '../codec/codec-server';
import { payloadCodecFromEnv } from '../codec/data-converter';
import { PAYLOAD_KEYS_ENV } from '../codec/payload-keys';
import { helpText, type Command } from './command';
import { UsageError } from './usage';

export const codecServer: Command = {
  name: 'codec-server',
  summary: `A Temporal codec server (POST /encode, POST /decode) with the keys of ${PAYLOAD_KEYS_ENV}, for the Web UI and the Temporal CLI. Needs ${CODEC_TOKEN_ENV}; Ctrl-C stops it.`,
  usage: '[--port 8089] [--host 127.0.0.1] [--ui-origin http://localhost:8233[,...]]',
  details: [
    `Callers authenticate with "Authorization: Bearer $${CODEC_TOKEN_ENV}" (temporal --codec-endpoint http://HOST:PORT --codec-auth "Bearer ..."),`,
    'or put the token in the endpoint path (Web UI data encoder setting: http://HOST:PORT/<token>). Anything else gets 401.',
    '--ui-origin: the Web UI origins allowed to call from a browser (CORS), comma-separated; default http://localhost:8233,http://127.0.0.1:8233.',
    `Request bodies are limited to ${DEFAULT_MAX_BODY_BYTES / 1024 / 1024} MiB.`,
  ].join('\n'),
  options: { port: { type: 'string' }, host: { type: 'string' }, 'ui-origin': { type: 'string' } },
  async run(_ctx, values) {
    const portText = typeof values.port === 'string' ? values.port : '8089';
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port > 65535) throw new UsageError(`--port: expected a port number, got '${portText}'`, helpText(codecServer));
    const originList = typeof values['ui-origin'] === 'string' ? values['ui-origin'] : 'http://localhost:8233,http://127.0.0.1:8233';
    let uiOrigins: string[];
    try {
      uiOrigins = originList.split(',').map((o) => parseOrigin(o.trim()));
    } catch (err) {
      throw new UsageError((err as Error).message, helpText(codecServer));
    }
    const codec = payloadCodecFromEnv();
    if (!codec) throw new Error(`${PAYLOAD_KEYS_ENV} is not set: the codec server needs the same keys as the workers (id:base64-key, first = current)`);
    const token = codecTokenFromEnv();
    const host = typeof values.host === 'string' ? values.host : '127.0.0.1';
    const server = await startCodecServer({ codec, token, uiOrigins, host, port });
    console.log(
      `mailover codec server on ${server.url}: keys ${codec.keyIds.join(', ')} (current ${codec.currentKeyId}); Web UI origins ${uiOrigins.join(', ')}`,
    );
    console.log(`Temporal CLI: temporal workflow show --workflow-id ID --codec-endpoint ${server.url} --codec-auth "Bearer $${CODEC_TOKEN_ENV}"`);
    await new Promise<void>((res) => {
      process.once('SIGINT', () => res());
      process.once('SIGTERM', () => res());
    });
    await server.close();
    console.log('codec server stopped');
  },
};
