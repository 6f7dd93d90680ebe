/** Finding e-mail addresses where none may be: workflow histories (payloads decoded), reasons, alerts. */
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';

/** An e-mail address of any domain (a dotted domain whose last label has letters: not a build id, a pid@host identity or a Message-ID domain without a dot). */
export const ANY_ADDRESS = /[\p{L}\p{N}._%+-]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.\p{L}[\p{L}\p{N}-]*/u;

/** Every payload's data in a history JSON, decoded from base64. */
export function decodedPayloads(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => decodedPayloads(n, out));
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (typeof o.data === 'string' && o.metadata && typeof o.metadata === 'object') out.push(Buffer.from(o.data, 'base64').toString('utf8'));
    for (const v of Object.values(o)) decodedPayloads(v, out);
  }
  return out;
}

/** The first address in a history (its JSON text and its decoded payloads), with some context; undefined when none. */
export function addressInHistoryJson(json: string): string | undefined {
  for (const text of [json, ...decodedPayloads(JSON.parse(json))]) {
    const m = ANY_ADDRESS.exec(text);
    if (m) return `${m[0]} in …${text.slice(Math.max(0, m.index - 80), m.index + 80)}…`;
  }
  return undefined;
}

/** The first address in a workflow's history so far (see addressInHistoryJson). */
export async function addressInHistory(handle: WorkflowHandle): Promise<string | undefined> {
  return addressInHistoryJson(historyToJSON(await handle.fetchHistory()));
}
