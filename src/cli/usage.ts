/** CLI errors and exit codes: 0 ok, 1 failure, 2 usage error. Errors print as one line. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly help?: string,
  ) {
    super(message);
  }
}

export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** One line a user can act on: no stack trace, no secret. */
export function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg
    .replace(/\s*\n\s*-\s*/g, '; ')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
}
