/**
 * A block of lines at the bottom of a terminal, redrawn in place: the cursor goes back up to the
 * block's first line, each line is rewritten and cleared to its end, and what the previous frame
 * had below is cleared. Nothing else on the screen is touched and nothing is cleared before it is
 * drawn again, so a redraw does not flicker. Lines are clipped to the terminal's width (a wrapped
 * line would throw the count of lines to go back up off) and the block to its height.
 */

/** The text that replaces a frame of `previousRows` rows (the cursor just below it) with `lines`. */
export function redrawText(previousRows: number, lines: readonly string[], size: { columns: number; rows: number }): { text: string; rows: number } {
  const fit = fitToHeight(lines, size.rows);
  const body = fit.map((line) => `${clip(line, size.columns)}\x1b[K`).join('\n');
  const up = previousRows > 0 ? `\r\x1b[${previousRows}A` : '';
  return { text: `${up}${body}\n\x1b[J`, rows: fit.length };
}

/** At most `width - 1` characters (the last column would wrap on some terminals), with … when cut. */
export function clip(line: string, width: number): string {
  const max = Math.max(10, width - 1);
  const chars = [...line];
  return chars.length <= max ? line : `${chars.slice(0, max - 1).join('')}…`;
}

function fitToHeight(lines: readonly string[], rows: number): string[] {
  const max = Math.max(3, rows - 1);
  if (lines.length <= max) return [...lines];
  return [...lines.slice(0, max - 1), `… ${lines.length - max + 1} more line(s) (terminal too short)`];
}

/** A redrawn block on a terminal stream; draws only when the frame changed. */
export class LiveRegion {
  private rows = 0;
  private last?: string;

  constructor(private readonly stream: Pick<NodeJS.WriteStream, 'write' | 'columns' | 'rows'>) {}

  draw(lines: readonly string[]): void {
    const key = lines.join('\n');
    if (key === this.last) return;
    this.last = key;
    const { text, rows } = redrawText(this.rows, lines, { columns: this.stream.columns || 80, rows: this.stream.rows || 24 });
    this.rows = rows;
    this.stream.write(text);
  }

  /** Leaves the last frame where it is: what is written next goes below it. */
  release(): void {
    this.rows = 0;
    this.last = undefined;
  }
}
