/**
 * The CLI's progress display: one line that redraws in place on a terminal. Elsewhere (a pipe, a
 * log file, CI) progress is not printed, or a 1,000,000-row import would leave 1,000 lines:
 * only a change of state (`update`'s `state`: running, paused, completed) prints its line, and
 * `done()` prints the last line once, as a summary.
 */
export class LiveLine {
  private drawn = false;
  /** Off a terminal: the last line given, whether it was printed, and the last state printed. */
  private last: string | undefined;
  private lastPrinted = true;
  private lastState: string | undefined;

  constructor(private readonly out: NodeJS.WriteStream) {}

  /** The current progress; `state`, when given, is what a change of prints a line off a terminal. */
  update(line: string, state?: string): void {
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${line}`);
      this.drawn = true;
      return;
    }
    this.last = line;
    this.lastPrinted = false;
    if (state !== undefined && state !== this.lastState) {
      this.out.write(line + '\n');
      this.lastPrinted = true;
      this.lastState = state;
    }
  }

  /** A line of its own above the live one. */
  print(line: string): void {
    if (this.drawn) this.out.write('\r\x1b[2K');
    this.out.write(line + '\n');
    this.drawn = false;
  }

  /** Ends the display: on a terminal the line stays; elsewhere the last line is printed if it was not. */
  done(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
    if (!this.lastPrinted && this.last !== undefined) this.out.write(this.last + '\n');
    this.lastPrinted = true;
  }
}
