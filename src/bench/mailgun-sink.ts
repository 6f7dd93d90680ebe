/**
 * MailgunSink: the benchmark's Mailgun-compatible API. It takes POST /v3/:domain/messages as
 * Mailgun does (HTTP basic auth `api:<key>`, multipart or urlencoded form, up to 1,000
 * recipients), counts each recipient and answers `{ id, message: 'Queued. Thank you.' }`,
 * optionally after a fixed latency (a real delay in the server: the client's call stays open).
 *
 * Unlike the Mailgun emulator (src/providers/mailgun/emulator.ts) it keeps no messages, events
 * or calls: a million recipients cost one byte each. Recipients addressed as the bench's
 * audiences are (`r<seq>.<tag>@...`) are counted per tag and seq in a Uint8Array (saturating
 * at 255), so lost and duplicated recipients can be told at the end; other addresses are only
 * counted in `accepted`. GET /v3/:domain/events (the provider's `verify()`, the health probe)
 * and POST /v1/analytics/logs (look-ups) answer empty pages.
 */
import http from 'node:http';
import type net from 'node:net';

/** Per-tag, per-seq counts of the recipients a sink accepted. */
export class RecipientCounter {
  private readonly byTag = new Map<string, Uint8Array>();
  /** Every recipient accepted, whatever its address. */
  accepted = 0;

  /** Counts one accepted recipient address. */
  add(address: string): void {
    this.accepted++;
    const parsed = parseBenchAddress(address);
    if (!parsed) return;
    let counts = this.byTag.get(parsed.tag);
    if (!counts || counts.length <= parsed.seq) {
      let size = counts ? counts.length : 1024;
      while (size <= parsed.seq) size *= 2;
      const grown = new Uint8Array(size);
      if (counts) grown.set(counts);
      this.byTag.set(parsed.tag, (counts = grown));
    }
    if (counts[parsed.seq] < 255) counts[parsed.seq]++;
  }

  /**
   * For the audience `r1.<tag>` … `r<n>.<tag>`: how many recipients were accepted at least once,
   * never (lost) and more than once (duplicated), and the extra copies of those.
   */
  tally(tag: string, n: number): { accepted: number; lost: number; duplicated: number; extraCopies: number } {
    const counts = this.byTag.get(tag.toLowerCase());
    let lost = 0;
    let duplicated = 0;
    let extraCopies = 0;
    for (let seq = 1; seq <= n; seq++) {
      const c = counts && seq < counts.length ? counts[seq] : 0;
      if (c === 0) lost++;
      else if (c > 1) {
        duplicated++;
        extraCopies += c - 1;
      }
    }
    return { accepted: n - lost, lost, duplicated, extraCopies };
  }

  /** Recipients of `tag` accepted so far (each seq once), for progress. */
  distinct(tag: string): number {
    const counts = this.byTag.get(tag.toLowerCase());
    if (!counts) return 0;
    let k = 0;
    for (let i = 0; i < counts.length; i++) if (counts[i] !== 0) k++;
    return k;
  }
}

/** `r42.mg@example.com` (or `Name <r42.mg@...>`) → { seq: 42, tag: 'mg' }; undefined for other addresses. */
export function parseBenchAddress(address: string): { seq: number; tag: string } | undefined {
  const m = /(?:^|<)\s*r(\d+)\.([^@\s<>]+)@/i.exec(address);
  if (!m) return undefined;
  const seq = Number(m[1]);
  return Number.isSafeInteger(seq) ? { seq, tag: m[2]!.toLowerCase() } : undefined;
}

/**
 * The recipients a Mailgun send form names: every `to` field, each split on commas outside
 * quotes and angle brackets. Multipart bodies are scanned for their `to` parts (no other part is
 * decoded: the recipient variables of a 1,000-recipient call are most of its megabyte).
 */
export function recipientsOfForm(body: Buffer, contentType: string): string[] {
  const type = contentType.toLowerCase();
  const fields: string[] = [];
  if (type.startsWith('application/x-www-form-urlencoded')) {
    fields.push(...new URLSearchParams(body.toString('utf8')).getAll('to'));
  } else if (type.startsWith('multipart/form-data')) {
    const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
    if (!boundary) return [];
    const delimiter = `\r\n--${boundary[1] ?? boundary[2]}`;
    // Prefixed with CRLF so the first part's delimiter looks like the others.
    const text = '\r\n' + body.toString('utf8');
    let at = text.indexOf(delimiter);
    while (at >= 0) {
      const headersStart = text.indexOf('\r\n', at + delimiter.length);
      if (headersStart < 0) break;
      const headersEnd = text.indexOf('\r\n\r\n', headersStart);
      if (headersEnd < 0) break;
      const next = text.indexOf(delimiter, headersEnd + 4);
      if (next < 0) break;
      if (/\r\nContent-Disposition:\s*form-data;\s*name="to"(?:;|\r|$)/i.test(text.slice(headersStart, headersEnd + 2))) {
        fields.push(text.slice(headersEnd + 4, next));
      }
      at = next;
    }
  }
  const out: string[] = [];
  for (const field of fields) out.push(...splitAddressList(field));
  return out;
}

/** `a@b, "X, Y" <c@d>` → ['a@b', '"X, Y" <c@d>']. */
function splitAddressList(field: string): string[] {
  if (!field.includes(',')) return field.trim() === '' ? [] : [field.trim()];
  const out: string[] = [];
  let current = '';
  let quoted = false;
  let angle = false;
  for (const ch of field) {
    if (ch === '"') quoted = !quoted;
    else if (ch === '<' && !quoted) angle = true;
    else if (ch === '>' && !quoted) angle = false;
    if (ch === ',' && !quoted && !angle) {
      if (current.trim() !== '') out.push(current.trim());
      current = '';
    } else current += ch;
  }
  if (current.trim() !== '') out.push(current.trim());
  return out;
}

export class MailgunSink {
  readonly counter = new RecipientCounter();
  calls = 0;
  private latencyMs = 0;
  private readonly sockets = new Set<net.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly server: http.Server;
  private readonly auth: string;
  private _port = 0;
  private firstAcceptAt: number | undefined;

  private constructor(
    readonly name: string,
    readonly apiKey: string,
  ) {
    this.auth = 'Basic ' + Buffer.from(`api:${apiKey}`).toString('base64');
    this.server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => void this.onRequest(req, res));
    this.server.on('connection', (socket: net.Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
    });
  }

  static async start(name: string, apiKey = 'key-bench-0123456789abcdef'): Promise<MailgunSink> {
    const sink = new MailgunSink(name, apiKey);
    await new Promise<void>((resolve, reject) => {
      sink.server.once('error', reject);
      sink.server.listen(0, '127.0.0.1', () => resolve());
    });
    sink._port = (sink.server.address() as net.AddressInfo).port;
    return sink;
  }

  get port(): number {
    return this._port;
  }
  get url(): string {
    return `http://127.0.0.1:${this._port}`;
  }
  get acceptedCount(): number {
    return this.counter.accepted;
  }
  get firstAcceptedAt(): number | undefined {
    return this.firstAcceptAt;
  }

  /** Each call is answered `ms` after its body arrived (0: at once). */
  setLatency(ms: number): void {
    this.latencyMs = Math.max(0, ms);
  }

  stop(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    return closed;
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    if (req.headers.authorization !== this.auth) return answer(res, 401, 'Forbidden');
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'GET' && /^\/v3\/[^/]+\/events(\/[^/]*)?$/.test(path)) {
      const base = `${this.url}${path}`;
      return answer(res, 200, { items: [], paging: { first: base, last: base, next: base, previous: base } });
    }
    if (req.method === 'POST' && path === '/v1/analytics/logs') return answer(res, 200, { items: [], pagination: {} });
    const send = /^\/v3\/([^/]+)\/messages$/.exec(path);
    if (req.method !== 'POST' || !send) return answer(res, 404, { message: 'Not found' });
    const recipients = recipientsOfForm(body, req.headers['content-type'] ?? '');
    if (recipients.length === 0) return answer(res, 400, { message: "'to' parameter is missing" });
    if (recipients.length > 1000) return answer(res, 400, { message: 'Too many recipients (max 1000)' });
    if (this.latencyMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          resolve();
        }, this.latencyMs);
        this.timers.add(timer);
      });
    }
    // Counted even if the client left meanwhile: Mailgun has the whole body and sends it.
    for (const r of recipients) this.counter.add(r);
    this.firstAcceptAt ??= Date.now();
    const call = ++this.calls;
    answer(res, 200, { id: `<bench.${process.pid}.${call}@${decodeURIComponent(send[1]!)}>`, message: 'Queued. Thank you.' });
  }
}

function answer(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
