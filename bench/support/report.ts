/** One line of the results table: a figure measured against the reference of the same run. */
export interface BenchResult {
  readonly benchmark: string;
  readonly backend: 'postgres' | 'pglite';
  /** What was measured, with its unit (a rate per second unless `unit` names another). */
  readonly measured: { readonly label: string; readonly perSecond: number; readonly unit?: string };
  readonly reference: { readonly label: string; readonly perSecond: number; readonly unit?: string };
  /** The target: a ratio of measured to reference, or an absolute rate. */
  readonly target: { readonly ratio: number } | { readonly perSecond: number };
  readonly notes?: string;
  /**
   * measured / reference of each round, when the two were measured in pairs: their median
   * is the reported ratio (steadier than the ratio of the two medians on a shared machine).
   */
  readonly roundRatios?: readonly number[];
}

export function ratioOf(result: BenchResult): number {
  return result.roundRatios !== undefined && result.roundRatios.length > 0
    ? median(result.roundRatios)
    : result.measured.perSecond / result.reference.perSecond;
}

export function met(result: BenchResult): boolean {
  return 'ratio' in result.target ? ratioOf(result) >= result.target.ratio : result.measured.perSecond >= result.target.perSecond;
}

const rate = (perSecond: number) => (perSecond < 10 ? `${perSecond.toFixed(2)}/s` : `${Math.round(perSecond).toLocaleString('en-US')}/s`);
const figure = (value: { readonly perSecond: number; readonly unit?: string | undefined }) =>
  value.unit === undefined ? rate(value.perSecond) : `${Math.round(value.perSecond).toLocaleString('en-US')} ${value.unit}`;

export function printTable(results: readonly BenchResult[]): void {
  const header = ['benchmark', 'backend', 'measured', 'reference', 'ratio', 'target', 'met'];
  const lines = results.map((result) => [
    result.benchmark,
    result.backend,
    `${result.measured.label} ${figure(result.measured)}`,
    `${result.reference.label} ${figure(result.reference)}`,
    ratioOf(result).toFixed(2),
    'ratio' in result.target ? `≥ ${result.target.ratio.toFixed(2)} × reference` : `≥ ${figure({ perSecond: result.target.perSecond, unit: result.measured.unit })}`,
    met(result) ? 'yes' : 'NO',
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)));
  const format = (cells: readonly string[]) => cells.map((cell, column) => cell.padEnd(widths[column]!)).join(' | ');
  console.log(format(header));
  console.log(widths.map((width) => '-'.repeat(width)).join('-|-'));
  for (const line of lines) console.log(format(line));
  for (const result of results) {
    const rounds = result.roundRatios === undefined ? '' : ` (ratio per round: ${result.roundRatios.map((ratio) => ratio.toFixed(2)).join(', ')})`;
    if (result.notes || rounds) console.log(`  ${result.benchmark} (${result.backend}): ${result.notes ?? ''}${rounds}`);
  }
}

/** The median of a few rounds: the machine is shared, one round alone says little. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function log(message: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);
}
