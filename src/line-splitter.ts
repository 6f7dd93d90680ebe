/**
 * Splits text that arrives in chunks into lines ending in '\n', in time linear in the text:
 * each character is searched once, and the pieces of a line that spans chunks are joined once,
 * when its end arrives. (Joining the carried part to each new chunk and splitting it again made
 * one 50 MB line take 17 s and 500 MB.) A line longer than `maxChars` is refused as soon as the
 * text read shows it, so no more than maxChars plus one chunk is ever held for a line.
 */
export class LineSplitter {
  /** Characters searched for a line break so far: each character of the input once. */
  scanned = 0;
  /** Lines handed out so far. */
  private lines = 0;
  /** The start of a line whose end has not arrived yet, as the chunks brought it. */
  private pieces: string[] = [];
  private pieceChars = 0;

  /** @param tooLong the error for line `lineNo` (1-based) once it is longer than `maxChars`. */
  constructor(
    private readonly maxChars: number,
    private readonly tooLong: (lineNo: number) => Error,
  ) {}

  /** Hands each line the text completes to `onLine` (without its '\n'). */
  push(text: string, onLine: (line: string, lineNo: number) => void): void {
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      this.scanned += (nl === -1 ? text.length : nl + 1) - start;
      if (nl === -1) break;
      const tail = text.slice(start, nl);
      this.check(this.pieceChars + tail.length);
      const line = this.pieces.length ? this.pieces.join('') + tail : tail;
      this.pieces = [];
      this.pieceChars = 0;
      onLine(line, ++this.lines);
      start = nl + 1;
    }
    if (start < text.length) {
      this.check(this.pieceChars + text.length - start);
      this.pieces.push(text.slice(start));
      this.pieceChars += text.length - start;
    }
  }

  /** Hands out the last line (text after the last '\n', possibly empty). */
  end(onLine: (line: string, lineNo: number) => void): void {
    const line = this.pieces.join('');
    this.pieces = [];
    this.pieceChars = 0;
    onLine(line, ++this.lines);
  }

  private check(chars: number): void {
    if (chars > this.maxChars) throw this.tooLong(this.lines + 1);
  }
}
