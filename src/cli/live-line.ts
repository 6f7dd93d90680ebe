/** One line that redraws in place on a terminal; elsewhere it prints only when the line's gist changes. */
export class LiveLine {
  private last = '';
  private drawn = false;
  constructor(private readonly out: NodeJS.WriteStream) {}

  update(line: string): void {
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${line}`);
      this.drawn = true;
    } else {
      // Without a terminal, print when the percentage or the state changes, not on every poll.
      const gist = line.replace(/\d+\/\d+.*?·/, '').replace(/\[[█░]+\]/, '');
      if (gist !== this.last) this.out.write(line + '\n');
      this.last = gist;
    }
  }

  /** A line of its own above the live one. */
  print(line: string): void {
    if (this.drawn) this.out.write('\r\x1b[2K');
    this.out.write(line + '\n');
    this.drawn = false;
  }

  done(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}
